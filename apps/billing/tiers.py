"""The tier feature matrix (SPEC "Tiers") and the one place that answers "may this user…?".

Limits: an int (a count, GB or requests per minute), ``None`` for unlimited, a bool for on/off.
Also the paid plans' prices and the Stripe lookup keys that map a price back to its tier.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from apps.accounts.models import Tier
from apps.core.errors import ApplicationError

from .error_codes import BillingErrorCode


class Feature(StrEnum):
    """Every gated feature and limit of the tier matrix; pass these, never bare strings."""

    AGENTS = "agents"
    BATCH_ACTIVE = "batch_active"
    CLOUD_STORAGE_GB = "cloud_storage_gb"
    BACKUP_GB = "backup_gb"
    PROVIDERS = "providers"
    BATCH_BUILDER = "batch_builder"
    PLUGIN_MARKETPLACE = "plugin_marketplace"
    SSO = "sso"
    REQUESTS_PER_MINUTE = "requests_per_minute"


UNLIMITED: Final = None
GIB: Final = 1024**3

FEATURES: Final[dict[str, dict[Feature, Any]]] = {
    Tier.FREE: {
        Feature.AGENTS: 3,
        Feature.BATCH_ACTIVE: 2,
        Feature.CLOUD_STORAGE_GB: 0,
        Feature.BACKUP_GB: 0,
        Feature.PROVIDERS: 1,
        Feature.BATCH_BUILDER: False,
        Feature.PLUGIN_MARKETPLACE: False,
        Feature.SSO: False,
        Feature.REQUESTS_PER_MINUTE: 20,
    },
    Tier.PRO: {
        Feature.AGENTS: UNLIMITED,
        Feature.BATCH_ACTIVE: 10,
        Feature.CLOUD_STORAGE_GB: 5,
        Feature.BACKUP_GB: 5,
        Feature.PROVIDERS: UNLIMITED,
        Feature.BATCH_BUILDER: False,
        Feature.PLUGIN_MARKETPLACE: False,
        Feature.SSO: False,
        Feature.REQUESTS_PER_MINUTE: 60,
    },
    Tier.POWER: {
        Feature.AGENTS: UNLIMITED,
        Feature.BATCH_ACTIVE: UNLIMITED,
        Feature.CLOUD_STORAGE_GB: 25,
        Feature.BACKUP_GB: 25,
        Feature.PROVIDERS: UNLIMITED,
        Feature.BATCH_BUILDER: True,
        Feature.PLUGIN_MARKETPLACE: True,
        Feature.SSO: False,
        Feature.REQUESTS_PER_MINUTE: 120,
    },
    Tier.TEAM: {
        Feature.AGENTS: UNLIMITED,
        Feature.BATCH_ACTIVE: UNLIMITED,
        Feature.CLOUD_STORAGE_GB: UNLIMITED,
        Feature.BACKUP_GB: UNLIMITED,
        Feature.PROVIDERS: UNLIMITED,
        Feature.BATCH_BUILDER: True,
        Feature.PLUGIN_MARKETPLACE: True,
        Feature.SSO: True,
        Feature.REQUESTS_PER_MINUTE: 200,  # per seat
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


def feature_limit(user: Any, name: Feature) -> Any:
    """The raw value of ``name`` for the user's tier (int, bool or ``None`` = unlimited)."""
    return FEATURES[_tier_of(user)][name]


def feature_enabled(user: Any, name: Feature) -> bool:
    """True when the tier has the feature at all (a true flag, a positive or unlimited limit)."""
    value = feature_limit(user, name)
    if isinstance(value, bool):
        return value
    return value is UNLIMITED or value > 0


def lowest_tier_with(name: Feature) -> str | None:
    return next((tier for tier in TIER_ORDER if FEATURES[tier][name] is UNLIMITED or FEATURES[tier][name]), None)


def require_feature(user: Any, name: Feature) -> None:
    """Raise a 403 naming the feature and the tier that unlocks it."""
    if not feature_enabled(user, name):
        unlocks = lowest_tier_with(name)
        raise ApplicationError(
            BillingErrorCode.FEATURE_NOT_AVAILABLE,
            f"'{name}' is not part of the {_tier_of(user)} plan; it is available from the {unlocks} plan.",
            status=403,
            extra={"feature": str(name), "required_tier": unlocks, "tier": _tier_of(user)},
        )


def quota_bytes(user: Any, name: Feature) -> int | None:
    """A ``*_gb`` limit in bytes; ``None`` when unlimited."""
    value = feature_limit(user, name)
    return None if value is UNLIMITED else int(value) * GIB


def require_below_limit(user: Any, name: Feature, *, current: int) -> None:
    """Raise a 403 when one more item would exceed a count limit such as ``batch_active``."""
    limit = feature_limit(user, name)
    if limit is not UNLIMITED and current >= limit:
        raise ApplicationError(
            BillingErrorCode.LIMIT_REACHED,
            f"The {_tier_of(user)} plan allows {limit} {name.replace('_', ' ')}; upgrade for more.",
            status=403,
            extra={"feature": str(name), "limit": limit, "tier": _tier_of(user)},
        )


def tier_rank(tier: str) -> int:
    """Position in TIER_ORDER (free = 0); unknown tiers rank as free."""
    return TIER_ORDER.index(Tier(tier)) if tier in TIER_ORDER else 0


def price_lookup_key(tier: str) -> str:
    """The Stripe ``lookup_key`` of the monthly price of a paid tier."""
    return f"adiuva_{tier}_monthly"


def tier_for_lookup_key(lookup_key: str | None) -> str | None:
    """The paid tier a Stripe price lookup key stands for, or ``None``."""
    return next((tier for tier in PAID_TIERS if price_lookup_key(tier) == lookup_key), None)


def requests_per_minute(user: Any, *, seats: int = 1) -> int:
    """The user's request budget per minute; per-seat tiers multiply by their seats."""
    per_minute = int(feature_limit(user, Feature.REQUESTS_PER_MINUTE))
    return per_minute * max(1, seats) if _tier_of(user) in PER_SEAT_TIERS else per_minute
