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


@pytest.fixture
def celery_eager():
    """Tasks queued with ``.delay`` run in place (the real task code, no worker process)."""
    from adiuva.celery import app

    # Tasks queued by name run eagerly only once registered: import the apps' task modules as a worker does.
    app.loader.import_default_modules()
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False
