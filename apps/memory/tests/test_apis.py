"""REST: the user lists, exports and deletes their own memory; other users' ids are 404."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue
from apps.core.testing.query_plans import most_rows_of_a_page_step
from apps.memory.apis import OUTPUT_SERIALIZERS
from apps.memory.learning import episode_capture
from apps.memory.models import MODEL_OF_KIND, AssociativeMemory, CoreMemory, Episode, MemoryKind, ProactivePattern
from apps.memory.selectors import memory_item_view, memory_queryset
from apps.memory.services import associative_memory_add, core_memory_set, episode_record, pattern_upsert

from .conftest import axis_embedding

pytestmark = pytest.mark.django_db


def _client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client


def _fill(owner, tag: str) -> dict[str, uuid.UUID]:
    core_memory_set(user_id=owner.id, key=f"{tag}-key", value=f"{tag}-value")
    return {
        "core": CoreMemory.objects.get(user=owner).id,
        "associative": associative_memory_add(
            user_id=owner.id, content=f"{tag}-fact", embedding=axis_embedding(1), entity_type="task", entity_id="t1"
        ).id,
        "episodic": episode_record(user_id=owner.id, session_id=f"{tag}-s", summary=f"{tag}-summary").id,
        "proactive": pattern_upsert(user_id=owner.id, description=f"{tag}-habit", confidence=0.7).id,
    }


@pytest.fixture
def bob(make_user):
    return make_user("bob@example.com")


def test_list_each_kind_decrypted_and_paginated(user, auth_client):
    # given
    _fill(user, "alice")
    for index in range(3):
        core_memory_set(user_id=user.id, key=f"extra-{index}", value="v")
    # when
    core = auth_client.get("/api/v1/memory/core?limit=2&page=1")
    associative = auth_client.get("/api/v1/memory/associative")
    episodic = auth_client.get("/api/v1/memory/episodic")
    proactive = auth_client.get("/api/v1/memory/proactive")
    # then
    assert core.status_code == 200
    assert (core.json()["count"], len(core.json()["results"])) == (4, 2)
    assert {"id", "key", "value", "created_at", "updated_at"} <= set(core.json()["results"][0])
    assert associative.json()["results"][0]["content"] == "alice-fact"
    assert associative.json()["results"][0]["entity_id"] == "t1"
    assert "embedding" not in associative.json()["results"][0]
    assert episodic.json()["results"][0]["summary"] == "alice-summary"
    assert (proactive.json()["results"][0]["description"], proactive.json()["results"][0]["active"]) == (
        "alice-habit",
        True,
    )


def test_lists_show_only_the_callers_memory(user, auth_client, bob):
    # given
    _fill(user, "alice")
    _fill(bob, "bob")
    # when
    bodies = [
        auth_client.get(f"/api/v1/memory/{kind}").json() for kind in ("core", "associative", "episodic", "proactive")
    ]
    # then
    assert all(body["count"] == 1 for body in bodies)
    assert "bob" not in str(bodies)


def test_set_core_memory_by_hand(user, auth_client):
    # when
    response = auth_client.post("/api/v1/memory/core", {"key": "timezone", "value": "UTC"})
    # then
    assert response.status_code == 204
    assert auth_client.get("/api/v1/memory/core").json()["results"][0]["value"] == "UTC"


def test_posting_other_kinds_is_not_allowed(auth_client):
    response = auth_client.post("/api/v1/memory/associative", {"content": "x"})
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_bad_core_memory_input_is_a_400_and_stores_nothing(user, auth_client):
    response = auth_client.post("/api/v1/memory/core", {"key": "", "value": "v" * 5000})
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert set(response.json()["fields"]) == {"key", "value"}
    assert not CoreMemory.objects.exists()


def test_export_returns_everything_decrypted(user, auth_client, bob):
    # given
    _fill(user, "alice")
    _fill(bob, "bob")
    # when
    response = auth_client.get("/api/v1/memory/export")
    with_vectors = auth_client.get("/api/v1/memory/export?include_embeddings=true")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["core"][0]["key"] == "alice-key"
    assert body["core"][0]["value"] == "alice-value"
    assert body["associative"][0]["content"] == "alice-fact"
    assert body["episodic"][0]["summary"] == "alice-summary"
    assert body["proactive"][0]["description"] == "alice-habit"
    assert "bob" not in response.content.decode()
    assert len(with_vectors.json()["associative"][0]["embedding"]) == 1536
    assert with_vectors.json()["associative"][0]["embedding"][0] == pytest.approx(1.0)


def test_delete_one_item_really_deletes_the_row(user, auth_client):
    # given
    ids = _fill(user, "alice")
    # when
    responses = [auth_client.delete(f"/api/v1/memory/{kind}/{item_id}") for kind, item_id in ids.items()]
    # then
    assert [r.status_code for r in responses] == [204, 204, 204, 204]
    for model in (CoreMemory, AssociativeMemory, Episode, ProactivePattern):
        assert not model.objects.filter(id__in=ids.values()).exists()


def test_another_users_item_is_a_404_and_survives(user, auth_client, bob):
    # given
    bobs = _fill(bob, "bob")
    # when / then
    for kind, item_id in bobs.items():
        assert auth_client.get(f"/api/v1/memory/{kind}/{item_id}").status_code == 404
        response = auth_client.delete(f"/api/v1/memory/{kind}/{item_id}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert AssociativeMemory.objects.filter(id=bobs["associative"]).exists()
    assert CoreMemory.objects.filter(user=bob).count() == 1


def test_unknown_ids_and_kinds_are_404(auth_client):
    assert auth_client.delete(f"/api/v1/memory/core/{uuid.uuid4()}").status_code == 404
    assert auth_client.get("/api/v1/memory/core/not-a-uuid").status_code == 404
    assert auth_client.get("/api/v1/memory/secrets").status_code == 404


def test_get_one_item(user, auth_client):
    ids = _fill(user, "alice")
    response = auth_client.get(f"/api/v1/memory/associative/{ids['associative']}")
    assert response.status_code == 200
    assert response.json()["content"] == "alice-fact"


def test_one_item_answers_what_its_list_answers_for_every_kind(user, auth_client, bob):
    ids = _fill(user, "alice")
    _fill(bob, "bob")
    for kind, item_id in ids.items():
        # when the same item is read alone, twice (the serializer is reused), and in its list
        alone = [auth_client.get(f"/api/v1/memory/{kind}/{item_id}") for _ in range(2)]
        listed = auth_client.get(f"/api/v1/memory/{kind}").json()["results"]
        # then every answer is the same, field by field and type by type
        assert [response.status_code for response in alone] == [200, 200]
        assert alone[0].json() == alone[1].json() == next(item for item in listed if item["id"] == str(item_id))
        assert set(alone[0].json()) == set(OUTPUT_SERIALIZERS[MemoryKind(kind)]().fields)


def test_delete_a_whole_kind(user, auth_client, bob):
    # given
    _fill(user, "alice")
    _fill(bob, "bob")
    episode_record(user_id=user.id, session_id="s2", summary="another")
    # when
    response = auth_client.delete("/api/v1/memory/episodic")
    # then
    assert response.json() == {"deleted": 2}
    assert not Episode.objects.filter(user=user).exists()
    assert Episode.objects.filter(user=bob).count() == 1
    assert CoreMemory.objects.filter(user=user).exists()


def test_delete_everything_and_counts(user, auth_client, bob):
    # given
    _fill(user, "alice")
    _fill(bob, "bob")
    assert auth_client.get("/api/v1/memory").json() == {
        "counts": {"core": 1, "associative": 1, "episodic": 1, "proactive": 1}
    }
    # when
    response = auth_client.delete("/api/v1/memory")
    # then
    assert response.json() == {"deleted": 4}
    assert auth_client.get("/api/v1/memory").json()["counts"] == {
        "core": 0,
        "associative": 0,
        "episodic": 0,
        "proactive": 0,
    }
    assert _client_for(bob).get("/api/v1/memory").json()["counts"]["associative"] == 1


def test_memory_requires_authentication(api_client):
    assert api_client.get("/api/v1/memory/export").status_code == 401


def _memory_reads(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if '"memory_' in q["sql"] or " memory_" in q["sql"]]


@pytest.mark.parametrize("kind", ["core", "associative", "episodic", "proactive"])
def test_a_later_page_and_its_count_come_from_one_query(user, auth_client, bob, kind):
    # given three items of each kind (and someone else's)
    _fill(user, "alice0")
    _more(user, "alice1")
    _more(user, "alice2")
    _fill(bob, "bob")

    # when the second page of one item is listed
    with CaptureQueriesContext(connection) as queries:
        page = auth_client.get(f"/api/v1/memory/{kind}", {"limit": 1, "page": 2})

    # then one read of the memory answers both, and the page is the second of the full list
    assert len(_memory_reads(queries)) == 1
    assert (page.json()["count"], page.json()["page"], page.json()["limit"]) == (3, 2, 1)
    assert page.json()["results"] == auth_client.get(f"/api/v1/memory/{kind}").json()["results"][1:2]


def _many(owner, kind: MemoryKind, n: int) -> None:
    """``n`` items of ``kind`` written directly (their contents are never decrypted here)."""
    token = b"sealed"
    rows: Callable[[int], Any] = {
        MemoryKind.CORE: lambda i: CoreMemory(
            user=owner, key_digest=i.to_bytes(32), key_encrypted=token, value_encrypted=token
        ),
        MemoryKind.ASSOCIATIVE: lambda i: AssociativeMemory(
            user=owner, content_encrypted=token, embedding=axis_embedding(1)
        ),
        MemoryKind.EPISODIC: lambda i: Episode(user=owner, session_id=f"s{i}", summary_encrypted=token),
        MemoryKind.PROACTIVE: lambda i: ProactivePattern(
            user=owner, description_digest=i.to_bytes(32), description_encrypted=token, confidence=0.5
        ),
    }[kind]
    MODEL_OF_KIND[kind].objects.bulk_create(rows(i) for i in range(n))


@pytest.mark.parametrize("kind", list(MemoryKind))
def test_a_page_of_a_long_memory_list_reads_only_its_own_rows(user, bob, kind):
    # given a user with 300 items of the kind (and someone else's), enough that the indexes pay
    _many(user, kind, 300)
    _many(bob, kind, 50)
    from apps.memory.selectors import _MEMORY_PAGES

    query = _MEMORY_PAGES[kind]
    values = {"user_id": user.pk}

    # when the page of 20 from offset 40 is planned and run, its count included
    most_rows = most_rows_of_a_page_step(query, values, limit=20, offset=40, with_count=True)

    # then no step handles more than the rows up to the page: the count is the user's tally, where
    # a count of the rows read all 300 of the user's index entries
    assert most_rows <= 60
    # and the page still knows the owner's total, not anyone else's
    rows = query.rows(limit=20, offset=40, **values)
    assert len(rows) == 20
    assert {row[-1] for row in rows} == {300}


def _more(owner, tag: str) -> None:
    core_memory_set(user_id=owner.id, key=f"{tag}-key", value=f"{tag}-value")
    associative_memory_add(user_id=owner.id, content=f"{tag}-fact", embedding=axis_embedding(2))
    episode_record(user_id=owner.id, session_id=f"{tag}-s", summary=f"{tag}-summary")
    pattern_upsert(user_id=owner.id, description=f"{tag}-habit", confidence=0.5)


def test_a_page_past_the_end_of_a_memory_list_is_404_and_an_empty_list_is_an_empty_page(user, auth_client):
    empty = auth_client.get("/api/v1/memory/core")
    _fill(user, "alice")
    past_end = auth_client.get("/api/v1/memory/core", {"page": 3})

    assert (empty.status_code, empty.json()) == (200, {"count": 0, "page": 1, "limit": 50, "results": []})
    assert (past_end.status_code, past_end.json()["code"]) == (404, "not_found")


def test_listed_items_are_what_the_item_endpoint_answers(user, auth_client):
    ids = _fill(user, "alice")

    for kind, item_id in ids.items():
        listed = auth_client.get(f"/api/v1/memory/{kind}").json()["results"]
        assert listed == [auth_client.get(f"/api/v1/memory/{kind}/{item_id}").json()]


def test_counts_come_from_one_query(user, auth_client, bob):
    _fill(user, "alice")
    _fill(bob, "bob")

    with CaptureQueriesContext(connection) as queries:
        counts = auth_client.get("/api/v1/memory").json()

    assert counts == {"counts": {"core": 1, "associative": 1, "episodic": 1, "proactive": 1}}
    assert len(_memory_reads(queries)) == 1


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_pages_and_items_are_byte_for_byte_what_the_output_serializers_answer(user, auth_client, zone):
    # given every kind, with empty optional fields, a pending episode, text JSON escapes differently,
    # and patterns on both sides of the threshold
    _fill(user, "alice")
    associative_memory_add(
        user_id=user.id, content='é ✓ "quoted" \u2028 \u2029 \t\x1f\x7f\\ line', embedding=axis_embedding(3)
    )
    episode_capture(user_id=user.id, session_id="s-pending", message="m", answer="a")
    pattern_upsert(user_id=user.id, description="rare habit", confidence=0.25)
    for model in MODEL_OF_KIND.values():
        # a date on a whole second (isoformat() writes no fraction then) and one with trailing zeros in its fraction
        first = model.objects.filter(user=user).order_by("created_at").first()
        model.objects.filter(pk=first.pk).update(
            created_at=dt.datetime(2026, 3, 29, 0, 59, 59, tzinfo=dt.UTC),
            updated_at=dt.datetime(2026, 3, 29, 1, 0, 0, 120000, tzinfo=dt.UTC),
        )
    headers = {}
    for kind in MemoryKind:
        # when the page and its first item are read, in the time zone
        with timezone.override(zone):
            response = auth_client.get(f"/api/v1/memory/{kind}")
            headers[kind] = [(k, v) for k, v in response.headers.items() if k not in ("Content-Length", "X-Request-ID")]
            items = memory_queryset(user_id=user.id, kind=kind)
            views = [memory_item_view(user_id=user.id, kind=kind, item=item) for item in items]
            item = auth_client.get(f"/api/v1/memory/{kind}/{views[0]['id']}")
            expected = [OUTPUT_SERIALIZERS[kind]().to_representation(view) for view in views]

        # then the bytes are the serializer's answer through the same renderer, keys in the same order
        page = {"count": len(views), "page": 1, "limit": 50, "results": expected}
        assert response.content == JSONRenderer().render(page)
        assert item.content == JSONRenderer().render(expected[0])
        text = response.content.decode()
        # the whole second, then the microsecond, as the serializer writes them in the zone
        if zone == "UTC":
            assert '"created_at":"2026-03-29T00:59:59Z","updated_at":"2026-03-29T01:00:00.120000Z"' in text
        else:  # the clocks went forward at 01:00 UTC that night
            assert '"created_at":"2026-03-29T01:59:59+01:00","updated_at":"2026-03-29T03:00:00.120000+02:00"' in text
    # and every kind's page has the same headers (some are written by json_rendered, proactive's by DRF)
    assert all(kind_headers == headers[MemoryKind.PROACTIVE] for kind_headers in headers.values())
