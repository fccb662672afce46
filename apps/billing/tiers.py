"""The tier feature matrix (SPEC "Tiers") and the one place that answers "may this user…?".

Limits: an int (a count, GB or requests per minute), ``None`` for unlimited, a bool for on/off.
Also the paid plans' prices and the Stripe lookup keys that map a price back to its tier.
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

# Monthly price of each paid plan in cents of BILLING_CURRENCY; team is per seat.
PLAN_PRICES: Final[dict[str, int]] = {Tier.PRO: 1500, Tier.POWER: 2900, Tier.TEAM: 4900}
PAID_TIERS: Final = tuple(PLAN_PRICES)
PER_SEAT_TIERS: Final = frozenset({Tier.TEAM})
# Stripe metadata key carried by our products and prices (a fallback to the lookup key).
TIER_METADATA_KEY: Final = "adiuva_tier"


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


def tier_rank(tier: str) -> int:
    """Position in TIER_ORDER (free = 0); unknown tiers rank as free."""
    return TIER_ORDER.index(tier) if tier in TIER_ORDER else 0


def price_lookup_key(tier: str) -> str:
    """The Stripe ``lookup_key`` of the monthly price of a paid tier."""
    return f"adiuva_{tier}_monthly"


def tier_for_lookup_key(lookup_key: str | None) -> str | None:
    """The paid tier a Stripe price lookup key stands for, or ``None``."""
    return next((tier for tier in PAID_TIERS if price_lookup_key(tier) == lookup_key), None)


def requests_per_minute(user: Any, *, seats: int = 1) -> int:
    """The user's request budget per minute; per-seat tiers multiply by their seats."""
    per_minute = int(feature_limit(user, "requests_per_minute"))
    return per_minute * max(1, seats) if _tier_of(user) in PER_SEAT_TIERS else per_minute
