"""The e-mail verification rule: tokens work for unverified accounts, but what spends money or
vouches for an identity (paid checkout, SSO, plugin developer submissions and payouts) needs a
verified address. Verification itself is allauth's confirmation mail and link.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.db import transaction
from django.http import HttpRequest

from apps.core.errors import ApplicationError

from .error_codes import AccountsErrorCode
from .models import User
from .selectors import user_email_verified

RESEND_PATH = "/api/v1/auth/verify-email/resend"


def require_verified_email(*, user: User) -> None:
    """Raise a 403 ``email_not_verified`` saying how to verify, unless ``user``'s address is verified."""
    if not user_email_verified(user=user):
        raise ApplicationError(
            AccountsErrorCode.EMAIL_NOT_VERIFIED,
            f"Verify your e-mail address first: open the link we sent to {user.email} "
            f"(ask for a new one with POST {RESEND_PATH}).",
            status=403,
            extra={"email": user.email},
        )


@transaction.atomic
def email_verification_resend(*, user: User, request: HttpRequest) -> EmailAddress:
    """Send allauth's confirmation mail for ``user``'s address again (a fresh link)."""
    address = EmailAddress.objects.select_for_update().filter(user=user, email__iexact=user.email).first()
    if address is None:  # accounts made outside allauth (admin, shell) have no e-mail record yet
        address = EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    if address.verified:
        raise ApplicationError(
            AccountsErrorCode.EMAIL_ALREADY_VERIFIED, f"{user.email} is already verified.", status=400
        )
    transaction.on_commit(lambda: address.send_confirmation(request, signup=False))
    return address
