"""Account reads."""

from allauth.account.models import EmailAddress

from .models import User


def user_email_verified(*, user: User) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()
