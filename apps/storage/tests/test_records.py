"""Encrypted records: create, list, download, update, delete; checksums, quota, tiers, isolation."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.testing import client_for
from apps.billing.tiers import GIB
from apps.core.testing.query_plans import most_rows_of_a_page_step
from apps.core.testing.threads import run_in_threads
from apps.storage.models import StorageRecord

from .conftest import b64, each_wrong_checksum, sha256_hex, stored_files

pytestmark = pytest.mark.django_db

URL = "/api/v1/storage/records"


def _create(client, data: bytes, table: str = "notes", checksum: str | None = None):
    return client.post(URL, {"table": table, "blob": b64(data), "checksum": checksum or sha256_hex(data)})


def test_record_round_trip_create_list_download_update_delete(pro_client, blob_dir, django_capture_on_commit_callbacks):
    # given a stored record
    created = _create(pro_client, b"ciphertext-1")
    assert created.status_code == 201
    record_id = created.json()["id"]
    assert isinstance(created.json()["created_at"], int)

    # when it is listed, then only metadata comes back
    response = pro_client.get(URL, {"table": "notes"})
    listed = response.json()
    assert response["X-Total-Count"] == "1"
    assert len(listed) == 1
    item = listed[0]
    assert item["id"] == record_id
    assert item["checksum"] == sha256_hex(b"ciphertext-1")
    assert item["size_bytes"] == len(b"ciphertext-1")
    assert "blob" not in item

    # when it is downloaded, then the exact bytes and X-Checksum come back
    downloaded = pro_client.get(f"{URL}/{record_id}", HTTP_ACCEPT="application/octet-stream")
    assert downloaded.status_code == 200
    assert downloaded.content == b"ciphertext-1"
    assert downloaded["X-Checksum"] == sha256_hex(b"ciphertext-1")

    # when it is updated, then the new bytes replace the old blob (removed after commit)
    with django_capture_on_commit_callbacks(execute=True):
        updated = pro_client.put(
            f"{URL}/{record_id}", {"blob": b64(b"ciphertext-2"), "checksum": sha256_hex(b"ciphertext-2")}
        )
    assert updated.json() == {"ok": True}
    assert pro_client.get(f"{URL}/{record_id}").content == b"ciphertext-2"
    assert len(stored_files(blob_dir)) == 1

    # when it is deleted, then the row and the blob are gone
    with django_capture_on_commit_callbacks(execute=True):
        deleted = pro_client.delete(f"{URL}/{record_id}")
    assert deleted.json() == {"ok": True}
    assert pro_client.get(f"{URL}/{record_id}").status_code == 404
    assert stored_files(blob_dir) == []


def test_list_filters_by_table_and_paginates(pro_client):
    for index in range(3):
        _create(pro_client, f"n{index}".encode(), table="notes")
    _create(pro_client, b"t", table="tasks")

    page = pro_client.get(URL, {"table": "notes", "limit": 2, "page": 2})
    everything = pro_client.get(URL)

    # a bare JSON array (the earlier backend's shape), the pagination in headers
    assert (page["X-Total-Count"], page["X-Page"], page["X-Per-Page"]) == ("3", "2", "2")
    assert 'rel="prev"' in page["Link"]
    assert 'rel="next"' not in page["Link"]
    assert len(page.json()) == 1
    assert {item["table"] for item in page.json()} == {"notes"}
    assert everything["X-Total-Count"] == "4"
    assert len(everything.json()) == 4


def test_a_first_page_holding_every_record_is_read_without_a_count_query(pro_client):
    # given fewer records than a page holds
    for index in range(3):
        _create(pro_client, f"n{index}".encode())

    # when the first page is listed
    with CaptureQueriesContext(connection) as queries:
        listed = pro_client.get(URL)

    # then the total comes from the page itself: no COUNT query, one read of the records
    record_reads = [q["sql"] for q in queries.captured_queries if '"storage_storagerecord"' in q["sql"]]
    assert len(record_reads) == 1
    assert not record_reads[0].startswith("SELECT COUNT(")
    assert (listed["X-Total-Count"], listed["X-Page"], listed["X-Per-Page"]) == ("3", "1", "50")
    assert "Link" not in listed
    assert len(listed.json()) == 3


def test_a_full_first_page_still_counts_every_record_and_links_the_next(pro_client):
    for index in range(5):
        _create(pro_client, f"n{index}".encode())

    listed = pro_client.get(URL, {"limit": 2})

    assert (listed["X-Total-Count"], listed["X-Page"], listed["X-Per-Page"]) == ("5", "1", "2")
    assert 'rel="next"' in listed["Link"]
    assert 'rel="prev"' not in listed["Link"]
    assert [item["id"] for item in listed.json()] == [item["id"] for item in pro_client.get(URL).json()[:2]]


def test_a_later_page_and_its_total_come_from_one_query(pro_client):
    # given more records than a page holds, in two tables
    for index in range(5):
        _create(pro_client, f"n{index}".encode())
    _create(pro_client, b"t", table="tasks")

    # when the second page of one table is listed
    with CaptureQueriesContext(connection) as queries:
        listed = pro_client.get(URL, {"table": "notes", "limit": 2, "page": 2})

    # then one read of the records answers both the page and the table's total
    record_reads = [q["sql"] for q in queries.captured_queries if '"storage_storagerecord"' in q["sql"]]
    assert len(record_reads) == 1
    assert (listed["X-Total-Count"], listed["X-Page"], listed["X-Per-Page"]) == ("5", "2", "2")
    assert 'rel="next"' in listed["Link"]
    assert 'rel="prev"' in listed["Link"]
    everything = pro_client.get(URL, {"table": "notes"}).json()
    assert listed.json() == everything[2:4]


def test_listed_metadata_is_what_the_record_serializer_answers(pro_client, pro_user):
    # given records in two tables
    _create(pro_client, b"one")
    _create(pro_client, b"two", table="tasks")
    # one dated on a whole second and a microsecond before the next (both round down)
    StorageRecord.objects.filter(pk=StorageRecord.objects.get(user=pro_user, table="notes").pk).update(
        created_at=dt.datetime(2026, 3, 29, 0, 59, 59, tzinfo=dt.UTC),
        updated_at=dt.datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=dt.UTC),
    )

    # when they are listed
    listed = pro_client.get(URL)

    # then every item is, byte for byte, the serializer's answer for the record (newest first)
    from rest_framework.renderers import JSONRenderer

    from apps.storage.apis.records import RecordMetaSerializer

    records = StorageRecord.objects.filter(user=pro_user).order_by("-created_at")
    assert listed.content == JSONRenderer().render(RecordMetaSerializer(records, many=True).data)
    assert listed.json()[-1]["created_at"] == listed.json()[-1]["updated_at"] == 1774745999


@pytest.mark.parametrize("page", ["0", "-1", "x", "1000001"])
def test_a_bad_page_number_is_a_validation_error(pro_client, page):
    response = pro_client.get(URL, {"page": page})

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_another_users_records_are_never_listed_or_counted(pro_client, make_user):
    # given a record of someone else
    stranger = make_user("stranger@example.com", tier="power")
    _create(client_for(stranger), b"theirs")
    _create(pro_client, b"mine")

    listed = pro_client.get(URL, {"limit": 1, "page": 2})

    assert (listed.status_code, listed.json(), listed["X-Total-Count"]) == (200, [], "1")


@each_wrong_checksum
def test_wrong_checksum_is_rejected_and_nothing_is_stored(pro_client, blob_dir, wrong_checksum):
    response = _create(pro_client, b"ciphertext", checksum=wrong_checksum(b"ciphertext"))

    assert response.status_code == 400
    assert response.json()["code"] == "checksum_mismatch"
    assert StorageRecord.objects.count() == 0
    assert stored_files(blob_dir) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"table": "notes", "blob": "not base64!!", "checksum": "0" * 64}, "invalid_blob"),
        ({"table": "notes", "blob": b64(b"x"), "checksum": "xyz"}, "invalid_checksum"),
        ({"table": "notes", "checksum": "0" * 64}, "validation_error"),
        ({"table": "bad table/..", "blob": b64(b"x"), "checksum": sha256_hex(b"x")}, "validation_error"),
    ],
)
def test_malformed_input_is_a_400_with_a_stable_code(pro_client, blob_dir, body, code):
    response = pro_client.post(URL, body)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert StorageRecord.objects.count() == 0
    assert stored_files(blob_dir) == []


def test_non_json_body_is_a_clear_400(pro_client):
    response = pro_client.generic("POST", URL, b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_blob_over_the_size_limit_is_413(pro_client, settings):
    settings.STORAGE_RECORD_MAX_BYTES = 8

    response = _create(pro_client, b"123456789")

    assert response.status_code == 413
    assert response.json()["code"] == "blob_too_large"


def test_free_tier_gets_the_billing_gate(auth_client, blob_dir):
    response = _create(auth_client, b"ciphertext")

    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "feature_not_available"
    assert body["feature"] == "cloud_storage_gb"
    assert body["required_tier"] == "pro"
    assert stored_files(blob_dir) == []


def test_quota_counts_what_is_really_stored(pro_client, pro_user, blob_dir):
    # given a pro user whose stored records already fill 5 GiB minus 10 bytes
    StorageRecord.objects.create(
        user=pro_user, table="big", blob_key="records/x/big", checksum="0" * 64, size_bytes=5 * GIB - 10
    )

    # when 11 bytes are uploaded, then the quota refuses it and nothing is written
    refused = _create(pro_client, b"x" * 11)
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"
    assert refused.json()["feature"] == "cloud_storage_gb"
    assert stored_files(blob_dir) == []

    # when exactly 10 bytes are uploaded, then they fit
    assert _create(pro_client, b"y" * 10).status_code == 201


def test_update_over_quota_keeps_the_old_bytes(pro_client, pro_user, blob_dir):
    record_id = _create(pro_client, b"old").json()["id"]
    StorageRecord.objects.create(
        user=pro_user, table="big", blob_key="records/x/big", checksum="0" * 64, size_bytes=5 * GIB - 5
    )

    response = pro_client.put(
        f"{URL}/{record_id}", {"blob": b64(b"much longer"), "checksum": sha256_hex(b"much longer")}
    )

    assert response.status_code == 403
    assert pro_client.get(f"{URL}/{record_id}").content == b"old"
    assert len(stored_files(blob_dir)) == 1


def test_a_downgraded_user_can_still_read_and_delete(pro_client, pro_user):
    record_id = _create(pro_client, b"kept").json()["id"]
    pro_user.tier = "free"
    pro_user.save()

    assert pro_client.get(f"{URL}/{record_id}").content == b"kept"
    assert pro_client.delete(f"{URL}/{record_id}").status_code == 200


def test_another_users_record_is_404_and_untouched(pro_client, other_client):
    record_id = _create(pro_client, b"mine").json()["id"]

    responses = [
        other_client.get(f"{URL}/{record_id}"),
        other_client.put(f"{URL}/{record_id}", {"blob": b64(b"theirs"), "checksum": sha256_hex(b"theirs")}),
        other_client.delete(f"{URL}/{record_id}"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert {r.json()["code"] for r in responses} == {"not_found"}
    assert other_client.get(URL).json() == []
    assert pro_client.get(f"{URL}/{record_id}").content == b"mine"


def test_unauthenticated_requests_are_401(api_client):
    assert api_client.get(URL).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_cannot_overshoot_the_quota(make_user) -> None:
    # given a pro user with room for exactly one more 100-byte record
    user = make_user("race@example.com", tier="pro")
    StorageRecord.objects.create(
        user=user, table="big", blob_key="records/x/race", checksum="0" * 64, size_bytes=5 * GIB - 150
    )
    data = b"z" * 100
    results: list[int] = []
    barrier = threading.Barrier(4)

    def upload() -> None:
        client = client_for(user)
        barrier.wait()
        try:
            results.append(_create(client, data).status_code)
        finally:
            connection.close()

    # when four uploads race
    run_in_threads(upload, 4)

    # then exactly one fits
    assert sorted(results) == [201, 403, 403, 403]
    assert StorageRecord.objects.filter(user=user).count() == 2


def test_a_record_whose_bytes_vanished_is_a_clear_404_not_a_500(pro_client, blob_dir):
    # given a record whose blob was lost from storage behind the database's back
    record_id = _create(pro_client, b"ciphertext-lost").json()["id"]
    for path in stored_files(blob_dir):
        path.unlink()

    # when it is downloaded
    response = pro_client.get(f"{URL}/{record_id}", HTTP_ACCEPT="application/octet-stream")

    # then the client gets a stable code, and the metadata row is still there to delete
    assert response.status_code == 404
    assert response.json()["code"] == "blob_missing"
    assert StorageRecord.objects.filter(id=record_id).exists()


@pytest.mark.parametrize("table", [None, "notes"])
def test_a_page_of_a_large_list_reads_only_its_own_rows(pro_user, table):
    # given a user with 300 records, in a table large enough that its indexes pay
    StorageRecord.objects.bulk_create(
        StorageRecord(user=pro_user, table="notes", blob_key=f"plan/{i}", checksum="0" * 64, size_bytes=1)
        for i in range(300)
    )
    from apps.storage.selectors import _RECORD_PAGE, _RECORD_PAGE_OF_TABLE

    query = _RECORD_PAGE_OF_TABLE if table else _RECORD_PAGE
    values = {"user_id": pro_user.pk, **({"table": table} if table else {})}

    # when the page of 20 from offset 40 is planned and run, its count included
    most_rows = most_rows_of_a_page_step(query, values, limit=20, offset=40, with_count=True)

    # then no step handles more than the rows up to the page: the count is the user's tally, where
    # a count of the rows read all 300 of the user's index entries
    assert most_rows <= 60
    # and the page still knows the total
    rows = query.rows(limit=20, offset=40, **values)
    assert len(rows) == 20
    assert {row[-1] for row in rows} == {300}
