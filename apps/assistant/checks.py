"""System checks of the assistant's configuration against what the database can hold."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error

from apps.core.vectors import EMBEDDING_DIMENSIONS


def embedding_dimensions_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The configured embedding size must be the vector columns' size: a larger model would pass
    every request and then fail each insert."""
    configured = settings.ASSISTANT_EMBEDDING_DIMENSIONS
    if configured == EMBEDDING_DIMENSIONS:
        return []
    return [
        Error(
            f"ASSISTANT_EMBEDDING_DIMENSIONS is {configured}, but the vector columns hold "
            f"{EMBEDDING_DIMENSIONS} dimensions.",
            hint=f"Use an embedding model of {EMBEDDING_DIMENSIONS} dimensions and set "
            f"ASSISTANT_EMBEDDING_DIMENSIONS={EMBEDDING_DIMENSIONS}; another size needs a migration of "
            "the columns (apps.core.vectors).",
            id="assistant.E001",
        )
    ]
