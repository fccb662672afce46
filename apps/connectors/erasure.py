"""What account deletion erases in connectors: every live grant is disconnected, so its refresh
token is revoked at the provider where the provider offers that; the rows go with the user."""

from __future__ import annotations

import uuid

from .grants import grant_disconnect
from .models import GrantStatus, OAuthGrant


def connectors_erase_user(user_id: uuid.UUID) -> None:
    for grant in OAuthGrant.objects.filter(user_id=user_id).exclude(status=GrantStatus.REVOKED):
        grant_disconnect(grant=grant, actor=None)
