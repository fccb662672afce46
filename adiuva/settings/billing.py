"""Billing: Stripe through dj-stripe, the tiers' request rates, LLM metering and budgets."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .auth import AUTH_USER_MODEL
from .environment import env

# BILLING (dj-stripe; Stripe Checkout, customer portal, signed webhooks)
# ------------------------------------------------------------------------------
# An empty STRIPE_SECRET_KEY means billing is not configured: its endpoints answer 503.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
# dj-stripe 2.11 keeps webhook secrets on WebhookEndpoint rows (created by
# `manage.py billing_webhook_endpoint`), verified by signature, never by re-fetching.
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_SUBSCRIBER_MODEL = AUTH_USER_MODEL
# Where Stripe Checkout and the customer portal send the browser back to.
BILLING_CHECKOUT_SUCCESS_URL = env("BILLING_CHECKOUT_SUCCESS_URL", default="https://adiuva.app/billing/success")
BILLING_CHECKOUT_CANCEL_URL = env("BILLING_CHECKOUT_CANCEL_URL", default="https://adiuva.app/billing/cancel")
BILLING_PORTAL_RETURN_URL = env("BILLING_PORTAL_RETURN_URL", default="https://adiuva.app/billing")
BILLING_CURRENCY = env("BILLING_CURRENCY", default="eur")
# Multiplies every tier's requests-per-minute; 1 in production (test settings raise it).
BILLING_RATE_LIMIT_SCALE = 1
# The throttle hits of requests checked in the same turn of a web process's loop go to Redis as one
# script call, at most this many keys in it (Redis runs a script alone: a bigger one holds every
# other client of the server for longer).
BILLING_THROTTLE_BATCH_MAX = env.int("BILLING_THROTTLE_BATCH_MAX", default=64)
if BILLING_THROTTLE_BATCH_MAX < 1:
    raise ImproperlyConfigured("BILLING_THROTTLE_BATCH_MAX must be 1 or more")
# LLM metering: every model call's tokens are recorded per user and checked against a monthly
# budget (tokens per calendar month, UTC; per tier in apps/billing/tiers.py). LLM_MONTHLY_TOKENS
# overrides tiers' budgets, e.g. "free=100000,pro=3000000"; false in LLM_METERING_ENABLED records
# nothing and refuses nothing.
LLM_METERING_ENABLED = env.bool("LLM_METERING_ENABLED", default=True)
LLM_MONTHLY_TOKENS = env.dict("LLM_MONTHLY_TOKENS", cast={"value": int}, default={})
# Tokens a request holds while it runs (a chat turn, a journey answer, an agent run, a summary), so
# racing requests can't all spend the same remainder; a hold left by a dead process expires (seconds).
LLM_BUDGET_RESERVATION_TOKENS = env.int("LLM_BUDGET_RESERVATION_TOKENS", default=8000)
LLM_BUDGET_RESERVATION_TTL = env.int("LLM_BUDGET_RESERVATION_TTL", default=900)
# Share of the budget (percent) past which the user is due one usage notice per period.
LLM_USAGE_NOTICE_PERCENT = env.int("LLM_USAGE_NOTICE_PERCENT", default=80)
# Raw per-call rows older than this are pruned once rolled up into daily totals (Celery beat).
LLM_USAGE_RETENTION_DAYS = env.int("LLM_USAGE_RETENTION_DAYS", default=90)
# Estimated cost: model -> [input, cached input, output] in USD per million tokens.
LLM_PRICES = env.json(
    "LLM_PRICES",
    default={
        "gpt-4o-mini": [0.15, 0.075, 0.60],
        "gpt-4o": [2.50, 1.25, 10.00],
        "gpt-4.1-mini": [0.40, 0.10, 1.60],
        "text-embedding-3-small": [0.02, 0.02, 0.0],
    },
)
