"""Reactions of devices to other apps' signals (connected in ``DevicesConfig.ready``): a
deactivated user's live sockets are closed right away (the periodic re-check is the fallback)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.db import transaction

from .close_codes import DeviceCloseCode
from .models import Device
from .services import devices_close_for_user

logger = logging.getLogger(__name__)


def close_sockets_of_deactivated_user(sender, instance, update_fields=None, **kwargs) -> None:
    if instance.is_active or (update_fields is not None and "is_active" not in update_fields):
        return
    if not Device.objects.filter(user_id=instance.pk, is_online=True).exists():
        return
    user_id = instance.pk

    def close() -> None:
        try:
            async_to_sync(devices_close_for_user)(user_id=user_id, code=DeviceCloseCode.USER_DEACTIVATED)
        except Exception:
            logger.exception("devices: could not close the sockets of a deactivated user")

    transaction.on_commit(close)
