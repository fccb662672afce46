"""A plan change that leaves the user over a storage quota makes that storage read-only (reads and
deletes work; writes get ``quota_exceeded`` from the quota checks), and back; nothing is deleted.
Each such change is audited."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from django.db import transaction

from apps.accounts.models import User
from apps.billing.tiers import Feature, quota_bytes
from apps.core.audit import AuditAction, audit_record

from .selectors import backup_used_bytes, storage_used_bytes

QUOTAS = ((Feature.CLOUD_STORAGE_GB, storage_used_bytes), (Feature.BACKUP_GB, backup_used_bytes))


def _over(tier: str, feature: Feature, used: int) -> bool:
    limit = quota_bytes(SimpleNamespace(tier=tier), feature)
    return limit is not None and used > limit


def storage_tier_changed(*, user_id: uuid.UUID, previous: str, tier: str) -> list[str]:
    """Audit each quota the change puts the user over (read-only) or back under (writable);
    returns the features whose state changed."""
    user = User.objects.get(pk=user_id)
    changed = []
    with transaction.atomic():
        for feature, used_bytes in QUOTAS:
            used = used_bytes(user=user)
            was_over, is_over = _over(previous, feature, used), _over(tier, feature, used)
            if was_over == is_over:
                continue
            audit_record(
                action=AuditAction.STORAGE_READ_ONLY if is_over else AuditAction.STORAGE_WRITABLE,
                actor=None,
                subject_user=user,
                data={
                    "feature": str(feature),
                    "used_bytes": used,
                    "limit_bytes": quota_bytes(SimpleNamespace(tier=tier), feature),
                    "from": previous,
                    "to": tier,
                },
            )
            changed.append(str(feature))
    return changed
