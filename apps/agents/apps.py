"""The agents app: local and cloud agent configs, scheduled runs, the delivery outbox, journey."""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from apps.accounts.signals import time_zone_changed

        from .receivers import on_time_zone_changed

        time_zone_changed.connect(on_time_zone_changed, dispatch_uid="agents.time_zone_changed")
