"""The connectors app: OAuth grants and the Gmail / Microsoft Graph clients (no LLM, no agents)."""

from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "apps.connectors"
    label = "connectors"
    verbose_name = "Connectors"
