"""Stable error codes of billing: tier gates, quotas, rate limits, Stripe."""

from enum import StrEnum


class BillingErrorCode(StrEnum):
    FEATURE_NOT_AVAILABLE = "feature_not_available"
    QUOTA_EXCEEDED = "quota_exceeded"
    LIMIT_REACHED = "limit_reached"
