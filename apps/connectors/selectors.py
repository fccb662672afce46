"""Reads of OAuth grants, always scoped to their owner."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import GrantStatus, OAuthGrant
from .providers import Provider

# Grants that count against the ``providers`` limit: revoked ones are gone, needs_reconnect are not.
CONNECTED_STATUSES = (GrantStatus.ACTIVE, GrantStatus.NEEDS_RECONNECT)


def grant_list(*, user: Any) -> QuerySet[OAuthGrant]:
    return OAuthGrant.objects.filter(user=user).order_by("provider")


def grant_get(*, user_id: Any, provider: Provider | str) -> OAuthGrant | None:
    return OAuthGrant.objects.filter(user_id=user_id, provider=str(provider)).first()


def connected_providers(*, user: Any) -> set[str]:
    """The providers whose grants count against the ``providers`` limit."""
    return set(OAuthGrant.objects.filter(user=user, status__in=CONNECTED_STATUSES).values_list("provider", flat=True))
