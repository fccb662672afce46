"""How billing calls Stripe: the configured secret key (or a 503 when billing is off) and one
translation of a failed Stripe call into a 502 with a stable code."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import stripe
from django.conf import settings

from apps.core.errors import ApplicationError

from .error_codes import BillingErrorCode
from .selectors import billing_configured

logger = logging.getLogger(__name__)


def stripe_api_key() -> str:
    if not billing_configured():
        raise ApplicationError(
            BillingErrorCode.BILLING_NOT_CONFIGURED,
            "Billing is not configured on this server.",
            status=503,
        )
    return settings.STRIPE_SECRET_KEY


@contextmanager
def stripe_errors() -> Iterator[None]:
    """Turn a failed Stripe call into a 502 with a stable code (the cause goes to the log)."""
    try:
        yield
    except stripe.StripeError as exc:
        logger.warning("stripe call failed: %s", exc.__class__.__name__, exc_info=True)
        raise ApplicationError(
            BillingErrorCode.STRIPE_UNAVAILABLE, "The payment provider could not complete the request.", status=502
        ) from exc
