"""What the outbox keeps after delivery: the id only, and only for AGENTS_OUTBOX_RETAIN_DAYS."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents.extraction import ProposedItem
from apps.agents.models import OutboxItem, OutboxStatus
from apps.agents.outbox import outbox_item_delivered, outbox_items_create
from apps.agents.tasks import agents_prune_outbox

pytestmark = pytest.mark.django_db


def _stored(user, title: str) -> uuid.UUID:
    item_id = uuid.uuid4()
    outbox_items_create(
        user_id=user.id, run_id=None, device_id="laptop", items=[(item_id, ProposedItem("notes", {"title": title}))]
    )
    return item_id


def test_a_delivered_item_keeps_its_id_but_not_its_content(user):
    # given a stored item
    item_id = _stored(user, "Minutes")

    # when the device acknowledges it
    outbox_item_delivered(item_id=item_id, run_id=None)

    # then the row says delivered, holds no payload, and proposing the same item again stores nothing
    row = OutboxItem.objects.get(id=item_id)
    assert (row.status, bytes(row.payload_ciphertext)) == (OutboxStatus.DELIVERED, b"")
    again = outbox_items_create(
        user_id=user.id, run_id=None, device_id="laptop", items=[(item_id, ProposedItem("notes", {"title": "M"}))]
    )
    assert again == []


def test_the_daily_prune_removes_old_delivered_and_refused_rows_and_never_pending_ones(user, settings):
    # given rows of every kind, some older than the retention
    settings.AGENTS_OUTBOX_RETAIN_DAYS = 90
    long_ago = timezone.now() - timedelta(days=91)
    old_pending, old_delivered, recent_delivered, old_failed = (_stored(user, str(n)) for n in range(4))
    OutboxItem.objects.filter(id=old_pending).update(created_at=long_ago)
    OutboxItem.objects.filter(id=old_delivered).update(status=OutboxStatus.DELIVERED, delivered_at=long_ago)
    OutboxItem.objects.filter(id=recent_delivered).update(
        status=OutboxStatus.DELIVERED, delivered_at=timezone.now() - timedelta(days=89)
    )
    OutboxItem.objects.filter(id=old_failed).update(status=OutboxStatus.FAILED, created_at=long_ago)

    # when the beat task runs
    pruned = agents_prune_outbox()

    # then only the old delivered and refused rows are gone
    assert pruned == 2
    assert set(OutboxItem.objects.values_list("id", flat=True)) == {old_pending, recent_delivered}
