"""Account reads."""

from typing import Any

from allauth.account.models import EmailAddress
from django.db.models import QuerySet

from apps.core.compiled_queries import CompiledQuery

from .models import User


def _verified_addresses(user_id: Any, email: Any) -> QuerySet[EmailAddress]:
    return EmailAddress.objects.filter(user_id=user_id, email__iexact=email, verified=True)


# auth/me asks this on every call: compiled once per process.
_VERIFIED_ADDRESS = CompiledQuery(
    _verified_addresses, user_id=User._meta.pk, email=EmailAddress._meta.get_field("email")
)


def user_email_verified(*, user: User) -> bool:
    return _VERIFIED_ADDRESS.exists(user_id=user.pk, email=user.email)
