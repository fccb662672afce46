"""Quota checks shared by records, vectors and backups: one error shape for "over your plan's quota"."""

from __future__ import annotations

from typing import Any

from apps.billing.error_codes import BillingErrorCode
from apps.billing.tiers import Feature, quota_bytes
from apps.core.errors import ApplicationError

from .selectors import storage_used_bytes


def quota_exceeded_error(
    *, feature: Feature, limit: int, used: int, incoming: int, status: int = 403
) -> ApplicationError:
    """403 for a request that would go over quota; 413 when it is the request's own body that is too big."""
    return ApplicationError(
        BillingErrorCode.QUOTA_EXCEEDED,
        f"This would use {used + incoming} bytes of the {limit}-byte '{feature}' quota of your plan.",
        status=status,
        extra={"feature": str(feature), "limit_bytes": limit, "used_bytes": used, "requested_bytes": incoming},
    )


def storage_room_require(*, user: Any, incoming: int, releasing: int = 0) -> None:
    """Must run inside a transaction holding the user's storage lock."""
    limit = quota_bytes(user, Feature.CLOUD_STORAGE_GB)
    if limit is None:
        return
    used = storage_used_bytes(user=user) - releasing
    if used + incoming > limit:
        raise quota_exceeded_error(feature=Feature.CLOUD_STORAGE_GB, limit=limit, used=used, incoming=incoming)
