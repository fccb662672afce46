"""The agents app: local and cloud agent configs, scheduled runs, the delivery outbox, journey."""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from apps.core.tallies import Tally, register_tally

        # As migration 0010 made it (inserts and deletes).
        register_tally(
            Tally(
                source="agents_agentrunlog",
                tally="agents_agentruntally",
                keys=("user_id", "agent_id"),
                sums={"runs": "1"},
            )
        )

        from apps.accounts.signals import time_zone_changed
        from apps.billing.signals import tier_changed
        from apps.devices.answer_frames import AnswerOf
        from apps.devices.bindings import register_bound_agents_source
        from apps.devices.frames import register_outgoing_frame
        from apps.devices.handlers import register_calls_reopener, register_connect_handler, register_message_handler
        from apps.devices.signals import device_forgotten

        from .configs import local_agents_by_device
        from .frames import AGENT_PROGRESS, AgentComplete, AgentData, AgentProgress, AgentRun
        from .receivers import on_device_forgotten, on_tier_changed, on_time_zone_changed
        from .socket_handlers import handle_agent_complete, handle_agent_data, on_device_hello, runs_reopen

        time_zone_changed.connect(on_time_zone_changed, dispatch_uid="agents.time_zone_changed")
        device_forgotten.connect(on_device_forgotten, dispatch_uid="agents.device_forgotten")
        tier_changed.connect(on_tier_changed, dispatch_uid="agents.tier_changed")
        register_bound_agents_source(local_agents_by_device)
        # The agent frames of the device socket are declared here, not in the devices app.
        # A run's pieces answer its agent_run: the device's frame budget never drops them.
        answers_run = AnswerOf(opened_by="agent_run", key="run_id")
        register_message_handler("agent_data", handle_agent_data, model=AgentData, answers=answers_run)
        register_message_handler(
            "agent_complete", handle_agent_complete, model=AgentComplete, answers=answers_run._replace(closes=True)
        )
        register_outgoing_frame(AgentRun)
        register_outgoing_frame(AgentProgress, capability=AGENT_PROGRESS)
        register_calls_reopener(runs_reopen)
        register_connect_handler(on_device_hello)
