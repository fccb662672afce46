"""OAuth grants to a user's mailbox / Teams: tokens encrypted with the user's key, never returned."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel

from .providers import Provider


class GrantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"  # refresh refused: the user must authorize again
    REVOKED = "revoked", "Revoked"  # disconnected by the user


class OAuthGrant(BaseModel):
    """One connected provider account of a user (one per provider).

    ``token_ciphertext`` is the Fernet token (user key) of the provider's token JSON
    (access_token, refresh_token, expires_at, token_type); only ``apps.connectors`` opens it.
    These grants are not logins: allauth's social accounts are a separate thing.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oauth_grants")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    status = models.CharField(max_length=20, choices=GrantStatus.choices, default=GrantStatus.ACTIVE)
    status_reason = models.CharField(max_length=255, blank=True, default="")
    scopes = models.JSONField(default=list, blank=True)
    token_ciphertext = models.BinaryField()
    access_expires_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        verbose_name = "OAuth grant"
        constraints = [models.UniqueConstraint(fields=["user", "provider"], name="connectors_grant_unique_provider")]

    def __str__(self) -> str:
        return f"{self.provider} grant of {self.user_id} ({self.status})"


class OAuthAuthorization(BaseModel):
    """A pending authorization: the ``state`` sent to the provider and the PKCE verifier kept for it.

    Only the SHA-256 of the state is stored (a database read does not yield a usable state); the
    verifier is encrypted with the user's key. Single use: ``consumed_at`` is set, under a row
    lock, by the callback that presents the state; rows expire after ``CONNECTORS_OAUTH_STATE_TTL``.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    state_hash = models.CharField(max_length=64, unique=True)
    code_verifier_ciphertext = models.BinaryField()
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.provider} authorization of {self.user_id}"
