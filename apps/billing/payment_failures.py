"""Failed invoice payments, recorded from the mirrored invoice and closed once it is paid."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from djstripe.models import Invoice
from djstripe.utils import convert_tstamp

from apps.accounts.models import User

from .models import PaymentFailure


def invoice_subscription_id(invoice: Invoice) -> str:
    data = invoice.stripe_data
    parent = (data.get("parent") or {}).get("subscription_details") or {}
    subscription = parent.get("subscription") or data.get("subscription") or ""
    return subscription if isinstance(subscription, str) else subscription.get("id", "")


def payment_failure_record(*, invoice: Invoice, user: User) -> PaymentFailure:
    """Record (or update) the failed payment of an invoice, from the mirrored invoice."""
    data = invoice.stripe_data
    paid = data.get("status") == "paid"
    failure, _ = PaymentFailure.objects.update_or_create(
        invoice_id=invoice.id,
        defaults={
            "user": user,
            "subscription_id": invoice_subscription_id(invoice),
            "amount_due": int(data.get("amount_due") or 0),
            "currency": str(data.get("currency") or settings.BILLING_CURRENCY),
            "attempt_count": int(data.get("attempt_count") or 0),
            "next_payment_attempt": convert_tstamp(data.get("next_payment_attempt")),
            "hosted_invoice_url": data.get("hosted_invoice_url") or "",
            "resolved_at": timezone.now() if paid else None,
        },
    )
    return failure


def payment_failure_resolve(*, invoice: Invoice) -> int:
    """Close the failure of an invoice that has now been paid."""
    return PaymentFailure.objects.filter(invoice_id=invoice.id, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), updated_at=timezone.now()
    )
