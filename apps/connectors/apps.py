"""The connectors app: OAuth grants and the Gmail / Microsoft Graph clients (no LLM, no agents)."""

from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "apps.connectors"
    label = "connectors"
    verbose_name = "Connectors"

    def ready(self) -> None:
        from apps.accounts.deletion import register_account_eraser

        from .erasure import connectors_erase_user

        register_account_eraser("connectors", connectors_erase_user)
