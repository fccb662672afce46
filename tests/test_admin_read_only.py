"""Rows written by services are read-only in the admin, through the one base (core.admin_base)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from apps.accounts.models import User
from apps.core.admin_base import ReadOnlyAdmin
from apps.devices.models import Device
from apps.memory.models import CoreMemory, Episode, MemoryOwner
from apps.storage.models import Backup, StorageRecord, VectorItem

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("model", "deletable"),
    [
        (StorageRecord, False),  # deleting would orphan the blob
        (VectorItem, False),
        (Backup, False),
        (CoreMemory, True),
        (Episode, True),
        (MemoryOwner, False),
        (Device, True),
    ],
)
def test_rows_written_by_services_can_be_viewed_not_added_or_changed(model, deletable):
    # given a superuser, who holds every model permission
    request = RequestFactory().get("/admin/")
    request.user = User.objects.create_superuser(email="root@example.com", password="pw-123456789")
    model_admin = admin.site._registry[model]

    # then the admin lets them look, never add or edit, and delete only where that is safe
    assert isinstance(model_admin, ReadOnlyAdmin)
    assert model_admin.has_view_permission(request)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert model_admin.has_delete_permission(request) is deletable
