"""A user's desktop installation and its presence on the device socket."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import BaseModel


class Device(BaseModel):
    """One desktop install (``device_id`` is chosen by the client, unique per user).

    Presence: ``is_online`` and ``channel_name`` name the socket currently holding the device;
    ``lease_expires_at`` is renewed by the socket's presence flush, so a server process that died
    without cleaning up stops counting as online once its lease runs out.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="devices")
    device_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True, default="")
    platform = models.CharField(max_length=64, blank=True, default="")
    agent_ids = models.JSONField(default=list, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    is_online = models.BooleanField(default=False)
    channel_name = models.CharField(max_length=255, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [models.UniqueConstraint(fields=["user", "device_id"], name="devices_device_unique_per_user")]
        indexes = [models.Index(fields=["user", "is_online", "-last_seen_at"], name="devices_online_idx")]

    def __str__(self) -> str:
        return f"{self.device_id} ({self.user_id})"
