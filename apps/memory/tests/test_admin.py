"""The memory admin shows counts per user and metadata, never content."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.memory.services import associative_memory_add, core_memory_set, episode_record, pattern_upsert

from .conftest import axis_embedding

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(make_user) -> Client:
    admin_user = make_user("admin@example.com", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin_user)
    return client


def test_owner_list_shows_counts_per_kind_and_no_content(staff_client, user):
    # given
    core_memory_set(user_id=user.id, key="timezone", value="SECRET-VALUE")
    core_memory_set(user_id=user.id, key="language", value="SECRET-VALUE-2")
    associative_memory_add(user_id=user.id, content="SECRET-CONTENT", embedding=axis_embedding(1))
    episode_record(user_id=user.id, session_id="s1", summary="SECRET-SUMMARY")
    pattern_upsert(user_id=user.id, description="SECRET-PATTERN", confidence=0.9)
    # when
    response = staff_client.get("/admin/memory/memoryowner/")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "alice@example.com" in page
    assert '<td class="field-core_count">2</td>' in page
    assert '<td class="field-associative_count">1</td>' in page
    assert "SECRET" not in page


@pytest.mark.parametrize("model", ["corememory", "associativememory", "episode", "proactivepattern"])
def test_item_pages_show_metadata_only(staff_client, user, model):
    # given
    core_memory_set(user_id=user.id, key="timezone", value="SECRET-VALUE")
    associative_memory_add(user_id=user.id, content="SECRET-CONTENT", embedding=axis_embedding(1))
    episode_record(user_id=user.id, session_id="s1", summary="SECRET-SUMMARY")
    pattern_upsert(user_id=user.id, description="SECRET-PATTERN", confidence=0.9)
    # when
    listing = staff_client.get(f"/admin/memory/{model}/")
    # then
    assert listing.status_code == 200
    assert "SECRET" not in listing.content.decode()
    assert "gAAAAA" not in listing.content.decode()  # no Fernet tokens either
