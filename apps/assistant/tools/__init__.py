"""The sub-agents' 23 device tools (seed names and parameters) plus ``search_notes``, a module per
domain, and the supervisors' ``update_core_memory`` (Home's supervisor also has ``search_notes``).

Every device tool runs one or more tool calls on the user's device through ``execute_on_client``
and returns a readable summary of the real rows, ids included; a device failure comes back as a
sentence the model can pass on. Data keys sent to the device are the client's camelCase columns.
"""

from langchain_core.tools import BaseTool

from .memory import update_core_memory
from .notes import NOTE_TOOLS, search_notes
from .projects import PROJECT_TOOLS
from .tasks import TASK_TOOLS
from .timelines import TIMELINE_TOOLS

SUBAGENT_TOOLS: dict[str, list[BaseTool]] = {
    "task": TASK_TOOLS,
    "project": PROJECT_TOOLS,
    "timeline": TIMELINE_TOOLS,
    "note": NOTE_TOOLS,
}
SUPERVISOR_TOOLS: list[BaseTool] = [update_core_memory]
HOME_SUPERVISOR_TOOLS: list[BaseTool] = [*SUPERVISOR_TOOLS, search_notes]

__all__ = [
    "HOME_SUPERVISOR_TOOLS",
    "NOTE_TOOLS",
    "PROJECT_TOOLS",
    "SUBAGENT_TOOLS",
    "SUPERVISOR_TOOLS",
    "TASK_TOOLS",
    "TIMELINE_TOOLS",
]
