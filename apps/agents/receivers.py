"""Reactions of agents to lower apps' signals (connected in ``AgentsConfig.ready``)."""

from __future__ import annotations

from typing import Any

from .configs import agent_schedules_recompute, local_agents_release_device


def on_time_zone_changed(sender: Any, *, user_id: Any, **kwargs: Any) -> None:
    """Schedules run in the user's zone: their next due times move with it."""
    agent_schedules_recompute(user_id=user_id)


def on_device_forgotten(sender: Any, *, user_id: Any, device_id: str, **kwargs: Any) -> None:
    """A forgotten device reads no folders any more: its agents are unbound and paused."""
    local_agents_release_device(user_id=user_id, device_id=device_id)
