"""Stable error codes of billing: tier gates, quotas, rate limits, Stripe."""

from enum import StrEnum


class BillingErrorCode(StrEnum):
    FEATURE_NOT_AVAILABLE = "feature_not_available"
    QUOTA_EXCEEDED = "quota_exceeded"
    LIMIT_REACHED = "limit_reached"
    LLM_BUDGET_EXHAUSTED = "llm_budget_exhausted"
    BILLING_NOT_CONFIGURED = "billing_not_configured"
    PLAN_NOT_AVAILABLE = "plan_not_available"
    ALREADY_SUBSCRIBED = "already_subscribed"
    NO_SUBSCRIPTION = "no_subscription"
    NO_CUSTOMER = "no_customer"
    STRIPE_UNAVAILABLE = "stripe_unavailable"
    WEBHOOK_SIGNATURE_MISSING = "webhook_signature_missing"
    WEBHOOK_SIGNATURE_INVALID = "webhook_signature_invalid"
    WEBHOOK_PROCESSING_FAILED = "webhook_processing_failed"
