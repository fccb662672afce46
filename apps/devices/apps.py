"""The devices app: the device socket, presence and tool calls."""

from django.apps import AppConfig
from django.db.models.signals import post_save


class DevicesConfig(AppConfig):
    name = "apps.devices"
    label = "devices"
    verbose_name = "Devices"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from apps.billing.usage_notice import usage_notice_sender_register
        from apps.core import metrics

        from .frames import register_outgoing_frame
        from .receivers import close_sockets_of_deactivated_user
        from .selectors import devices_online_count
        from .usage_notice import USAGE_NOTICE, UsageNotice, usage_notice_broadcast

        metrics.gauge_source("adiuva_devices_online", "Devices with a live socket.", devices_online_count)

        # Billing decides when a user is told about their LLM budget; the socket layer tells them.
        register_outgoing_frame(UsageNotice, capability=USAGE_NOTICE)
        usage_notice_sender_register(usage_notice_broadcast)

        post_save.connect(
            close_sockets_of_deactivated_user, sender=get_user_model(), dispatch_uid="devices.close_on_deactivate"
        )
