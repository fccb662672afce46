"""Vector items: upsert, cosine search on client vectors, exact-blob search, delete; isolation and quota."""

from __future__ import annotations

from typing import Any

import pytest

from apps.billing.tiers import GIB
from apps.storage.models import StorageRecord, VectorItem

from .conftest import b64, each_wrong_checksum, sha256_hex

pytestmark = pytest.mark.django_db

UPSERT = "/api/v1/storage/vectors/upsert"
SEARCH = "/api/v1/storage/vectors/search"
DELETE = "/api/v1/storage/vectors"


def axis(index: int, *, tilt: float = 0.0) -> list[float]:
    vector = [0.0] * 1536
    vector[index] = 1.0
    vector[(index + 1) % 1536] = tilt
    return vector


def item(item_id: str, blob: bytes, vector: list[float] | None = None) -> dict:
    body: dict[str, Any] = {"id": item_id, "blob": b64(blob), "checksum": sha256_hex(blob)}
    if vector is not None:
        body["vector"] = vector
    return body


def test_query_vector_ranks_the_users_items_by_cosine(pro_client, other_client):
    # given three items of mine and a closer one of someone else's
    pro_client.post(
        UPSERT,
        {
            "vectors": [
                item("a", b"A", axis(0)),
                item("b", b"B", axis(0, tilt=1.0)),
                item("c", b"C", axis(5)),
                item("d", b"D"),
            ]
        },
    )
    other_client.post(UPSERT, {"vectors": [item("theirs", b"T", axis(0))]})

    # when I search near axis 0
    response = pro_client.post(SEARCH, {"query_vector": axis(0), "top_k": 2})

    # then my nearest two come back in order, with cosine scores and their blobs
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results] == ["a", "b"]
    assert results[0]["score"] == pytest.approx(1.0)
    assert results[1]["score"] == pytest.approx(2**-0.5, abs=1e-5)
    assert results[0]["blob"] == b64(b"A")


def test_query_blob_alone_matches_identical_blobs_only(pro_client, other_client):
    pro_client.post(UPSERT, {"vectors": [item("a", b"same"), item("b", b"same"), item("c", b"different")]})
    other_client.post(UPSERT, {"vectors": [item("theirs", b"same")]})

    results = pro_client.post(SEARCH, {"query_blob": b64(b"same")}).json()["results"]

    assert sorted(r["id"] for r in results) == ["a", "b"]
    assert {r["score"] for r in results} == {1.0}


def test_upsert_replaces_by_client_id_and_delete_removes(pro_client):
    assert pro_client.post(UPSERT, {"vectors": [item("a", b"v1", axis(1))]}).json() == {"upserted": 1}
    assert pro_client.post(UPSERT, {"vectors": [item("a", b"v2"), item("b", b"x")]}).json() == {"upserted": 2}

    row = VectorItem.objects.get(item_id="a")
    assert bytes(row.blob) == b"v2"
    assert row.vector is None

    deleted = pro_client.delete(DELETE, {"ids": ["a", "nope"]})
    assert deleted.json() == {"ok": True, "deleted": 1}
    assert list(VectorItem.objects.values_list("item_id", flat=True)) == ["b"]


@each_wrong_checksum
def test_one_bad_checksum_stores_nothing_from_the_batch(pro_client, wrong_checksum):
    bad = item("b", b"B")
    bad["checksum"] = wrong_checksum(b"B")

    response = pro_client.post(UPSERT, {"vectors": [item("a", b"A"), bad]})

    assert response.status_code == 400
    assert response.json()["code"] == "checksum_mismatch"
    assert "vectors.1.checksum" in response.json()["fields"]
    assert VectorItem.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"vectors": [item("a", b"A", [0.1] * 3)]}, "invalid_vector"),
        ({"vectors": [item("a", b"A", [0.0] * 1536)]}, "invalid_vector"),
        ({"vectors": [{"id": "a", "blob": "%%%", "checksum": "0" * 64}]}, "invalid_blob"),
        ({"vectors": []}, "validation_error"),
    ],
)
def test_malformed_upserts_are_400(pro_client, body, code):
    response = pro_client.post(UPSERT, body)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert VectorItem.objects.count() == 0


BAD_NUMBERS = ["1e39", "-1e39", "1e400", "-1e400", "1" + "0" * 400, "NaN", "Infinity", '"NaN"', '"inf"', '"1e39"']


@pytest.mark.parametrize("number", BAD_NUMBERS)
def test_a_vector_component_no_float32_holds_is_a_400_on_upsert_and_search(pro_client, number):
    # given a vector whose first component pgvector's single precision cannot hold, as raw JSON
    vector = "[" + ", ".join([number] + ["0.1"] * 1535) + "]"
    blob = item("a", b"A")
    upsert = f'{{"vectors": [{{"id": "a", "blob": "{blob["blob"]}", "checksum": "{blob["checksum"]}", '
    upsert += f'"vector": {vector}}}]}}'
    search = f'{{"query_vector": {vector}, "top_k": 3}}'

    # when it is upserted and searched with
    responses = [
        pro_client.generic("POST", url, body, "application/json") for url, body in ((UPSERT, upsert), (SEARCH, search))
    ]

    # then both are a stable 400 naming the vector, and nothing is stored
    assert [r.status_code for r in responses] == [400, 400]
    assert {r.json()["code"] for r in responses} <= {"invalid_vector", "validation_error", "malformed_request"}
    assert VectorItem.objects.count() == 0


@pytest.mark.parametrize("top_k", ["1" + "0" * 400, "9223372036854775808", "1e400", "NaN", '"1e3"'])
def test_a_top_k_beyond_any_integer_column_is_a_400(pro_client, top_k):
    response = pro_client.generic(
        "POST", SEARCH, f'{{"query_vector": {axis(0)}, "top_k": {top_k}}}', "application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] in {"validation_error", "malformed_request"}


def test_search_needs_a_query(pro_client):
    response = pro_client.post(SEARCH, {"top_k": 3})

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_vector_items_count_against_the_storage_quota(pro_client, pro_user):
    StorageRecord.objects.create(
        user=pro_user, table="big", blob_key="k/big", checksum="0" * 64, size_bytes=5 * GIB - 3
    )

    response = pro_client.post(UPSERT, {"vectors": [item("a", b"four")]})

    assert response.status_code == 403
    assert response.json()["code"] == "quota_exceeded"


def test_free_tier_cannot_upsert(auth_client):
    response = auth_client.post(UPSERT, {"vectors": [item("a", b"A")]})

    assert response.status_code == 403
    assert response.json()["code"] == "feature_not_available"


def test_delete_only_touches_my_items(pro_client, other_client):
    pro_client.post(UPSERT, {"vectors": [item("shared-id", b"mine")]})
    other_client.post(UPSERT, {"vectors": [item("shared-id", b"theirs")]})

    other_client.delete(DELETE, {"ids": ["shared-id"]})

    assert pro_client.post(SEARCH, {"query_blob": b64(b"mine")}).json()["results"][0]["id"] == "shared-id"


def test_schema_documents_what_search_can_do(api_client):
    schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").content.decode()

    assert "cosine similarity" in schema
    assert "byte-for-byte identical" in schema
