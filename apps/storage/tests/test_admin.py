"""The admin shows storage metadata to staff, read-only, and never the ciphertext."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.storage.models import Backup, StorageRecord, VectorItem

pytestmark = pytest.mark.django_db


def test_staff_see_metadata_but_not_blobs(make_user, pro_user):
    # given stored metadata and a vector item with a recognisable blob
    record = StorageRecord.objects.create(
        user=pro_user, table="notes", blob_key="records/k", checksum="a" * 64, size_bytes=3
    )
    backup = Backup.objects.create(user=pro_user, version=4, timestamp=1, checksum="b" * 64, blob_key="backups/k")
    item = VectorItem.objects.create(
        user=pro_user, item_id="v1", blob=b"SECRET-CIPHERTEXT", checksum="c" * 64, size_bytes=17
    )
    staff = make_user("staff@example.com", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)

    # when staff open the lists and detail pages
    pages = [
        browser.get("/admin/storage/storagerecord/"),
        browser.get(f"/admin/storage/storagerecord/{record.id}/change/"),
        browser.get("/admin/storage/backup/"),
        browser.get(f"/admin/storage/backup/{backup.id}/change/"),
        browser.get(f"/admin/storage/vectoritem/{item.id}/change/"),
    ]

    # then every page renders, and no blob bytes appear
    assert [page.status_code for page in pages] == [200] * 5
    assert all(b"SECRET-CIPHERTEXT" not in page.content for page in pages)
    assert b"notes" in pages[0].content
