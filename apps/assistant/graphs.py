"""The Home and Floating supervisors: deepagents graphs with the task/project/timeline/note sub-agents.

The graphs hold no per-request state (the system prompt, with memory and scope, is passed per
run through a middleware reading the run's context), so one compiled graph per kind, model
configuration and event loop is reused across requests. deepagents' built-in filesystem tools and its
general-purpose sub-agent are switched off through a harness profile: the model sees only the
``task`` dispatcher, ``update_core_memory`` and, inside each sub-agent, its own device tools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from deepagents import (
    FsToolName,
    GeneralPurposeSubagentProfile,
    HarnessProfile,
    SubAgent,
    create_deep_agent,
    register_harness_profile,
)
from django.conf import settings
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import SystemMessage
from langgraph.graph.state import CompiledStateGraph

from apps.core.group_commit import loop_local

from . import prompts
from .kinds import ChatKind
from .llm import ModelRole, chat_model, model_name
from .tools import HOME_SUPERVISOR_TOOLS, SUBAGENT_TOOLS, SUPERVISOR_TOOLS

FILESYSTEM_TOOLS = frozenset(get_args(FsToolName))


@dataclass(frozen=True)
class RunPrompt:
    """Per-run context: the supervisor's system prompt, assembled for this request. A future of it
    lets the graph start while the prompt is still being assembled (memory, scope): its first model
    call waits for it."""

    system_prompt: str | asyncio.Future[str]

    async def text(self) -> str:
        prompt = self.system_prompt
        return prompt if isinstance(prompt, str) else await asyncio.shield(prompt)

    def ready_text(self) -> str:
        prompt = self.system_prompt
        return prompt if isinstance(prompt, str) else prompt.result()


# The compiled supervisor: any state, run with a RunPrompt as its context.
SupervisorGraph = CompiledStateGraph[Any, RunPrompt, Any, Any]


class RunSystemPromptMiddleware(AgentMiddleware):
    """Puts the run's assembled system prompt in front of every supervisor model call."""

    name = "AdiuvaRunSystemPrompt"

    def wrap_model_call(self, request: ModelRequest, handler: Any) -> ModelResponse:
        context = getattr(request.runtime, "context", None)
        if isinstance(context, RunPrompt):
            request = request.override(system_message=SystemMessage(context.ready_text()))
        return handler(request)

    async def awrap_model_call(self, request: ModelRequest, handler: Any) -> ModelResponse:
        context = getattr(request.runtime, "context", None)
        if isinstance(context, RunPrompt):
            request = request.override(system_message=SystemMessage(await context.text()))
        return await handler(request)


# deepagents copies its ``grep`` tool on every model call to fit its default description to the
# backend, unless the description is our own; the copy's schema is then built again for the token
# count before each call (about a millisecond on the way to the first token). The model never sees
# the tool (excluded above), so any text will do.
_UNSEEN_TOOL_DESCRIPTIONS = {"grep": "Not offered."}


def _register_profile(key: str) -> None:
    register_harness_profile(
        key,
        HarnessProfile(
            excluded_tools=FILESYSTEM_TOOLS,
            tool_description_overrides=_UNSEEN_TOOL_DESCRIPTIONS,
            general_purpose_subagent=GeneralPurposeSubagentProfile(enabled=False),
        ),
    )


def _subagents() -> list[SubAgent]:
    sub_model = chat_model(ModelRole.SUBAGENT)
    return [
        SubAgent(
            name=name,
            description=prompts.SUBAGENT_DESCRIPTIONS[name],
            system_prompt=prompts.subagent_system_prompt(name),
            tools=tools,
            model=sub_model,
        )
        for name, tools in SUBAGENT_TOOLS.items()
    ]


_profiles_registered: set[str] = set()
# Compiled graphs hold HTTP clients whose connections belong to the event loop that opened them,
# so each loop (the ASGI server's, or a worker's own) gets its own graphs.
_graphs: Callable[[], dict[tuple, SupervisorGraph]] = loop_local(dict)


def _build(kind: ChatKind) -> SupervisorGraph:
    for role in ModelRole:
        key = f"openai:{model_name(role)}"
        if key not in _profiles_registered:
            _register_profile(key)
            _profiles_registered.add(key)
    return create_deep_agent(
        model=chat_model(ModelRole.SUPERVISOR),
        tools=HOME_SUPERVISOR_TOOLS if kind == "home" else SUPERVISOR_TOOLS,
        system_prompt=None,
        middleware=[RunSystemPromptMiddleware()],
        subagents=_subagents(),
        context_schema=RunPrompt,
        name=f"adiuva_{kind}",
    )


def supervisor_graph(kind: ChatKind) -> SupervisorGraph:
    """The compiled ``home`` or ``floating`` supervisor for the current settings and event loop."""
    # The key names the configuration, so changed settings (tests) build a fresh graph.
    key = (
        kind,
        model_name(ModelRole.SUPERVISOR),
        model_name(ModelRole.SUBAGENT),
        settings.OPENAI_BASE_URL,
        settings.OPENAI_API_KEY,
        settings.ASSISTANT_LLM_TIMEOUT,
        settings.ASSISTANT_LLM_MAX_RETRIES,
    )
    per_loop = _graphs()
    graph = per_loop.get(key)
    if graph is None:
        graph = per_loop[key] = _build(kind)
    return graph
