"""The assistant's system checks: configuration the database cannot hold fails at startup."""

from __future__ import annotations

import pytest
from django.core import checks

pytestmark = pytest.mark.django_db  # some apps' checks read the database


def _assistant_errors() -> list[str]:
    return [message.id for message in checks.run_checks() if message.id and message.id.startswith("assistant.")]


def test_an_embedding_size_the_vector_columns_cannot_hold_fails_the_system_check(settings):
    # given a deployment configured for a 3072-dimension embedding model
    settings.ASSISTANT_EMBEDDING_DIMENSIONS = 3072

    # when Django runs its checks (as manage.py and the server do at startup), then it is an error
    assert _assistant_errors() == ["assistant.E001"]


def test_the_default_embedding_size_passes_the_system_check(settings):
    settings.ASSISTANT_EMBEDDING_DIMENSIONS = 1536

    assert _assistant_errors() == []
