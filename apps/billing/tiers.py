"""The tier feature matrix (SPEC "Tiers") and the one place that answers "may this user…?".

Limits: an int (a count, GB or requests per minute), ``None`` for unlimited, a bool for on/off.
"""

from __future__ import annotations

from typing import Any, Final

from apps.accounts.models import Tier
from apps.core.errors import ApplicationError

from .error_codes import BillingErrorCode

UNLIMITED: Final = None
GIB: Final = 1024**3

FEATURES: Final[dict[str, dict[str, Any]]] = {
    Tier.FREE: {
        "agents": 3,
        "batch_active": 2,
        "cloud_storage_gb": 0,
        "backup_gb": 0,
        "providers": 1,
        "batch_builder": False,
        "plugin_marketplace": False,
        "sso": False,
        "requests_per_minute": 20,
    },
    Tier.PRO: {
        "agents": UNLIMITED,
        "batch_active": 10,
        "cloud_storage_gb": 5,
        "backup_gb": 5,
        "providers": UNLIMITED,
        "batch_builder": False,
        "plugin_marketplace": False,
        "sso": False,
        "requests_per_minute": 60,
    },
    Tier.POWER: {
        "agents": UNLIMITED,
        "batch_active": UNLIMITED,
        "cloud_storage_gb": 25,
        "backup_gb": 25,
        "providers": UNLIMITED,
        "batch_builder": True,
        "plugin_marketplace": True,
        "sso": False,
        "requests_per_minute": 120,
    },
    Tier.TEAM: {
        "agents": UNLIMITED,
        "batch_active": UNLIMITED,
        "cloud_storage_gb": UNLIMITED,
        "backup_gb": UNLIMITED,
        "providers": UNLIMITED,
        "batch_builder": True,
        "plugin_marketplace": True,
        "sso": True,
        "requests_per_minute": 200,  # per seat
    },
}
TIER_ORDER: Final = [Tier.FREE, Tier.PRO, Tier.POWER, Tier.TEAM]


def _tier_of(user: Any) -> str:
    tier = getattr(user, "tier", Tier.FREE)
    return tier if tier in FEATURES else Tier.FREE


def feature_limit(user: Any, name: str) -> Any:
    """The raw value of ``name`` for the user's tier (int, bool or ``None`` = unlimited)."""
    return FEATURES[_tier_of(user)][name]


def feature_enabled(user: Any, name: str) -> bool:
    """True when the tier has the feature at all (a true flag, a positive or unlimited limit)."""
    value = feature_limit(user, name)
    if isinstance(value, bool):
        return value
    return value is UNLIMITED or value > 0


def lowest_tier_with(name: str) -> str | None:
    return next((tier for tier in TIER_ORDER if FEATURES[tier][name] is UNLIMITED or FEATURES[tier][name]), None)


def require_feature(user: Any, name: str) -> None:
    """Raise a 403 naming the feature and the tier that unlocks it."""
    if not feature_enabled(user, name):
        unlocks = lowest_tier_with(name)
        raise ApplicationError(
            BillingErrorCode.FEATURE_NOT_AVAILABLE,
            f"'{name}' is not part of the {_tier_of(user)} plan; it is available from the {unlocks} plan.",
            status=403,
            extra={"feature": name, "required_tier": unlocks, "tier": _tier_of(user)},
        )


def quota_bytes(user: Any, name: str) -> int | None:
    """A ``*_gb`` limit in bytes; ``None`` when unlimited."""
    value = feature_limit(user, name)
    return None if value is UNLIMITED else int(value) * GIB


def require_below_limit(user: Any, name: str, *, current: int) -> None:
    """Raise a 403 when one more item would exceed a count limit such as ``batch_active``."""
    limit = feature_limit(user, name)
    if limit is not UNLIMITED and current >= limit:
        raise ApplicationError(
            BillingErrorCode.LIMIT_REACHED,
            f"The {_tier_of(user)} plan allows {limit} {name.replace('_', ' ')}; upgrade for more.",
            status=403,
            extra={"feature": name, "limit": limit, "tier": _tier_of(user)},
        )
