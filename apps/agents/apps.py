"""The agents app: local and cloud agent configs, scheduled runs, the delivery outbox, journey."""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"
