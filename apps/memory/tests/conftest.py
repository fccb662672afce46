"""Fixtures for memory tests: deterministic 1536-dim embeddings pointing in chosen directions."""

from __future__ import annotations

import math

import pytest

from apps.memory.models import EMBEDDING_DIMENSIONS


def axis_embedding(*weights: float) -> list[float]:
    """A unit vector whose first dimensions are ``weights`` (normalised), the rest zero."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    vector[: len(weights)] = weights
    norm = math.sqrt(sum(w * w for w in weights))
    return [v / norm for v in vector]


@pytest.fixture
def embed():
    return axis_embedding
