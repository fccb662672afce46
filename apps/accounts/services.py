"""Account writes: registration (with the user's key and allauth's e-mail record) and login."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from apps.core.errors import ApplicationError, CoreErrorCode

from .error_codes import AccountsErrorCode
from .login_policy import password_login_rules_check
from .models import User
from .signals import time_zone_changed
from .time_zones import time_zone_is_valid
from .tokens import TokenPair, tokens_issue


def _email_taken() -> ApplicationError:
    return ApplicationError(
        AccountsErrorCode.EMAIL_TAKEN,
        "An account with this e-mail address already exists.",
        status=400,
        fields={"email": ["An account with this e-mail address already exists."]},
    )


def user_register(*, email: str, password: str, request: HttpRequest | None = None) -> tuple[User, TokenPair]:
    """Create the account, its key, its allauth e-mail record, and a first session; all or nothing."""
    email = User.objects.normalize_email(email).lower()
    try:
        password_validation.validate_password(password, user=User(email=email))
    except DjangoValidationError as exc:
        raise ApplicationError(
            CoreErrorCode.VALIDATION_ERROR,
            "The password is too weak: " + " ".join(exc.messages),
            fields={"password": list(exc.messages)},
        ) from exc
    if User.objects.filter(email__iexact=email).exists():
        raise _email_taken()
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password)
            address = EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
            tokens = tokens_issue(user=user)
            if request is not None:
                transaction.on_commit(lambda: address.send_confirmation(request, signup=True))
    except IntegrityError as exc:  # a concurrent registration won the race
        raise _email_taken() from exc
    return user, tokens


def user_login(*, email: str, password: str, request: HttpRequest | None = None) -> tuple[User, TokenPair]:
    user = authenticate(request, username=User.objects.normalize_email(email).lower(), password=password)
    if user is None:
        inactive = User.objects.filter(email__iexact=email, is_active=False).first()
        if inactive is not None and inactive.check_password(password):
            raise ApplicationError(AccountsErrorCode.ACCOUNT_DISABLED, "This account is disabled.", status=401)
        raise ApplicationError(
            AccountsErrorCode.INVALID_CREDENTIALS, "The e-mail address or password is incorrect.", status=401
        )
    password_login_rules_check(user=user)
    return user, tokens_issue(user=user)


def user_time_zone_set(*, user: User, time_zone: str) -> User:
    """Set the user's IANA time zone (agent schedules run in it); a 400 naming ``time_zone`` if unknown."""
    if not time_zone_is_valid(time_zone):
        reason = f"'{time_zone}' is not an IANA time zone name (for example 'Europe/Berlin' or 'UTC')."
        raise ApplicationError(CoreErrorCode.VALIDATION_ERROR, f"time_zone: {reason}", fields={"time_zone": [reason]})
    previous = user.time_zone
    if previous == time_zone:
        return user
    with transaction.atomic():
        User.objects.filter(id=user.id).update(time_zone=time_zone)
        user.time_zone = time_zone
        transaction.on_commit(
            lambda: time_zone_changed.send(sender=User, user_id=user.id, previous=previous, time_zone=time_zone)
        )
    return user
