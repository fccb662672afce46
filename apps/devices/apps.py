"""The devices app: the device socket, presence and tool calls."""

from django.apps import AppConfig
from django.db.models.signals import post_save


class DevicesConfig(AppConfig):
    name = "apps.devices"
    label = "devices"
    verbose_name = "Devices"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from apps.core import metrics

        from .selectors import devices_online_count
        from .signals import close_sockets_of_deactivated_user

        metrics.gauge_source("adiuva_devices_online", "Devices with a live socket.", devices_online_count)

        post_save.connect(
            close_sockets_of_deactivated_user, sender=get_user_model(), dispatch_uid="devices.close_on_deactivate"
        )
