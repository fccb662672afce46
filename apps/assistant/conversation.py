"""Runs a supervisor graph for one message and turns its stream into simple events.

Yields ``("subagent", name)`` when the supervisor dispatches a sub-agent (its ``task`` tool call)
and ``("text", chunk)`` for the supervisor's own streamed words; sub-agents' words and tool
messages stay inside. A dispatch is reported as soon as its ``subagent_type`` has streamed (a
Floating request's domain, and the text held for it, need not wait for the end of the model's
step), and once per call. Model failures become ``ApplicationError``s with the assistant's codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from django.conf import settings
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphRecursionError

from apps.core.errors import ApplicationError

from .error_codes import AssistantErrorCode
from .graphs import RunPrompt, supervisor_graph
from .kinds import ChatKind

logger = logging.getLogger(__name__)

HISTORY_MAX_MESSAGES = 20
HISTORY_MAX_CHARS = 4000
DISPATCH_TOOL = "task"
# The sub-agent's name inside the dispatch call's arguments, once its closing quote has streamed.
_SUBAGENT_TYPE = re.compile(r'"subagent_type"\s*:\s*"((?:[^"\\]|\\.)*)"')


def history_messages(history: list[dict[str, Any]] | None) -> list[BaseMessage]:
    """The client's earlier turns as chat messages (user and assistant only, bounded)."""
    messages: list[BaseMessage] = []
    for item in (history or [])[-HISTORY_MAX_MESSAGES:]:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if not isinstance(content, str) or not content.strip():
            continue
        content = content[:HISTORY_MAX_CHARS]
        if item.get("role") == "user":
            messages.append(HumanMessage(content))
        elif item.get("role") == "assistant":
            messages.append(AIMessage(content))
    return messages


class DispatchWatch:
    """Follows the supervisor's streamed tool-call chunks and names each ``task`` dispatch's
    sub-agent the moment its ``subagent_type`` is complete, before the call itself is."""

    def __init__(self) -> None:
        self._calls: dict[Any, dict[str, str]] = {}  # chunk index → id, name and arguments so far
        self.reported: set[str] = set()  # call ids already yielded

    def feed(self, chunk: AIMessageChunk) -> list[str]:
        found = []
        for part in chunk.tool_call_chunks:
            call = self._calls.setdefault(part.get("index"), {"id": "", "name": "", "args": ""})
            call["id"] = part.get("id") or call["id"]
            call["name"] = part.get("name") or call["name"]
            call["args"] += part.get("args") or ""
            if call["name"] != DISPATCH_TOOL or not call["id"] or call["id"] in self.reported:
                continue
            match = _SUBAGENT_TYPE.search(call["args"])
            if match is None:
                continue
            self.reported.add(call["id"])
            try:
                found.append(json.loads(f'"{match.group(1)}"'))
            except ValueError:
                self.reported.discard(call["id"])  # an odd escape: the finished call will name it
        return found

    def step_done(self) -> None:
        self._calls.clear()  # chunk indexes start again in the next model step


def _malformed() -> ApplicationError:
    return ApplicationError(
        AssistantErrorCode.LLM_MALFORMED_RESPONSE,
        "The language model returned a malformed tool call; nothing more was done. Please try again.",
        status=502,
    )


async def agent_events(
    *, kind: ChatKind, message: str, history: list[dict[str, Any]] | None, system_prompt: str | asyncio.Future[str]
) -> AsyncIterator[tuple[str, str]]:
    """The run's events; ``system_prompt`` may be a future of it, awaited by the first model call."""
    graph = supervisor_graph(kind)
    state = {"messages": [*history_messages(history), HumanMessage(message)]}
    config: RunnableConfig = {"recursion_limit": settings.ASSISTANT_RECURSION_LIMIT}
    dispatches = DispatchWatch()
    # With a list of stream modes langgraph yields (mode, chunk) pairs; its types describe one mode.
    chunk: Any
    try:
        async for mode, chunk in graph.astream(
            state, config=config, context=RunPrompt(system_prompt), stream_mode=["messages", "updates"]
        ):
            if mode == "messages":
                msg, metadata = chunk
                if isinstance(msg, AIMessageChunk) and metadata.get("langgraph_node") == "model":
                    text = msg.text
                    if text:
                        yield "text", text
                    if msg.tool_call_chunks:
                        for name in dispatches.feed(msg):
                            yield "subagent", name
                continue
            update = chunk.get("model") if isinstance(chunk, dict) else None
            if update is not None:
                dispatches.step_done()
            for msg in (update or {}).get("messages", []):
                if not isinstance(msg, AIMessage):
                    continue
                if msg.invalid_tool_calls and not msg.tool_calls:
                    raise _malformed()
                for call in msg.tool_calls:
                    if call["name"] == DISPATCH_TOOL and call["id"] not in dispatches.reported:
                        yield "subagent", str(call["args"].get("subagent_type", ""))
    except ApplicationError:
        raise
    except GraphRecursionError as exc:
        raise ApplicationError(
            AssistantErrorCode.INTERNAL_ERROR,
            "The assistant took too many steps on this request and stopped. Try a simpler request.",
            status=502,
        ) from exc
    except (openai.APIError, httpx.HTTPError) as exc:
        logger.warning("LLM request failed: %s", type(exc).__name__)
        raise ApplicationError(
            AssistantErrorCode.LLM_UNAVAILABLE,
            "The language model service failed or could not be reached; please try again later.",
            status=502,
        ) from exc
