"""The agents app's frames on the device socket: ``agent_run`` and ``agent_progress`` out,
``agent_data`` / ``agent_complete`` in.

Declared here and registered with the socket in ``AgentsConfig.ready`` (the devices app knows
nothing of agents). Wire shapes are the desktop client's: ``agent_run {run_id, agent_id,
config{paths, file_extensions, prompt_template, data_types}}``, ``agent_data {run_id,
files[{path, name, content, metadata}]}``, ``agent_complete {run_id, files_read, errors}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from apps.devices.frames import IncomingFrameModel, OutgoingFrameModel

# A client reading many small files sends them in pieces; this bounds one piece (the frame size
# limit DEVICE_MAX_FRAME_BYTES bounds its bytes).
MAX_FILES_PER_PIECE = 1000


class AgentFile(IncomingFrameModel):
    path: str = Field(max_length=4096)
    name: str = Field(max_length=1024)
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentData(IncomingFrameModel):
    type: Literal["agent_data"]
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    run_id: str = Field(min_length=1, max_length=128)
    files: list[AgentFile] = Field(default_factory=list, max_length=MAX_FILES_PER_PIECE)


class AgentComplete(IncomingFrameModel):
    type: Literal["agent_complete"]
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    run_id: str = Field(min_length=1, max_length=128)
    files_read: int = Field(default=0, ge=0)
    errors: list[Any] = Field(default_factory=list, max_length=1000)


class AgentRunConfig(OutgoingFrameModel):
    paths: list[str] = Field(default_factory=list)
    file_extensions: list[str] = Field(default_factory=list)
    prompt_template: str = ""
    data_types: list[str] = Field(default_factory=list)


class AgentRun(OutgoingFrameModel):
    type: Literal["agent_run"] = "agent_run"
    run_id: str
    agent_id: str
    config: AgentRunConfig


AGENT_PROGRESS = "agent_progress"  # the capability a socket negotiates to get AgentProgress


class AgentProgress(OutgoingFrameModel):
    """How far a run of one of the user's agents is (capability ``agent_progress``; never sent to a
    seed client). Counters only grow within a run; ``phase`` ends at ``done``."""

    type: Literal["agent_progress"] = "agent_progress"
    run_id: str
    agent_id: str
    phase: Literal["reading", "extracting", "delivering", "done"]
    files_read: int = Field(ge=0)
    items_extracted: int = Field(ge=0)
    items_delivered: int = Field(ge=0)
