"""Reads about agents.

STAND-IN with the agreed names and signatures (``agents_due_for_device``); the owner's version
replaces it on merge.
"""

from __future__ import annotations

from django.utils import timezone

from .models import CloudAgentConfig, LocalAgentConfig


def agents_due_for_device(*, user_id, device_id: str) -> list[LocalAgentConfig | CloudAgentConfig]:
    """Enabled configs whose next run came due (while the device was offline): the device's own
    local agents and the user's cloud agents."""
    now = timezone.now()
    local = LocalAgentConfig.objects.filter(user_id=user_id, device_id=device_id, enabled=True, next_run_at__lte=now)
    cloud = CloudAgentConfig.objects.filter(user_id=user_id, enabled=True, next_run_at__lte=now)
    return [*local, *cloud]
