"""What higher apps bind to a device, asked through a registry (the devices app knows none of them).

The agents app registers a source of the local agents bound to each device; ``GET devices`` shows
them as ``bound_agents``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BoundAgentsSource = Callable[[Any], dict[str, list[str]]]

_bound_agents_sources: list[BoundAgentsSource] = []


def register_bound_agents_source(source: BoundAgentsSource) -> None:
    """``source(user_id)`` → ``{device_id: [agent id, ...]}``."""
    if source not in _bound_agents_sources:
        _bound_agents_sources.append(source)


def bound_agents(*, user_id: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for source in _bound_agents_sources:
        for device_id, agent_ids in source(user_id).items():
            found.setdefault(device_id, []).extend(agent_ids)
    return found
