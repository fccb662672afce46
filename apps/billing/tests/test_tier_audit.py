"""Every tier change writes one audit row: old and new tier, no actor (a webhook decided)."""

from __future__ import annotations

import pytest

from apps.core.audit import AuditAction
from apps.core.models import AuditEvent

from .helpers import subscribe

pytestmark = pytest.mark.django_db


def test_a_webhook_tier_change_is_audited_with_old_and_new_tier(user, plans, fake_stripe, deliver):
    # given a free user whose subscription becomes active
    sub = subscribe(fake_stripe, user, "pro")

    # when the webhook arrives, and is replayed
    deliver(fake_stripe.event("customer.subscription.created", sub))
    deliver(fake_stripe.event("customer.subscription.updated", sub))

    # then one row says free -> pro, decided by the system, about this user
    rows = list(AuditEvent.objects.filter(action=AuditAction.TIER_CHANGED))
    assert len(rows) == 1
    assert (rows[0].data["from"], rows[0].data["to"]) == ("free", "pro")
    assert rows[0].actor is None
    assert rows[0].subject_user_id == user.pk
