"""Runs a supervisor graph for one message and turns its stream into simple events.

Yields ``("subagent", name)`` when the supervisor dispatches a sub-agent (its ``task`` tool call)
and ``("text", chunk)`` for the supervisor's own streamed words; sub-agents' words and tool
messages stay inside. Model failures become ``ApplicationError``s with the assistant's codes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from django.conf import settings
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langgraph.errors import GraphRecursionError

from apps.core.errors import ApplicationError

from .error_codes import AssistantErrorCode
from .graphs import RunPrompt, supervisor_graph

logger = logging.getLogger(__name__)

HISTORY_MAX_MESSAGES = 20
HISTORY_MAX_CHARS = 4000


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


def _malformed() -> ApplicationError:
    return ApplicationError(
        AssistantErrorCode.LLM_MALFORMED_RESPONSE,
        "The language model returned a malformed tool call; nothing more was done. Please try again.",
        status=502,
    )


async def agent_events(
    *, kind: str, message: str, history: list[dict[str, Any]] | None, system_prompt: str
) -> AsyncIterator[tuple[str, str]]:
    graph = supervisor_graph(kind)
    state = {"messages": [*history_messages(history), HumanMessage(message)]}
    config = {"recursion_limit": settings.ASSISTANT_RECURSION_LIMIT}
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
                continue
            update = chunk.get("model") if isinstance(chunk, dict) else None
            for msg in (update or {}).get("messages", []):
                if not isinstance(msg, AIMessage):
                    continue
                if msg.invalid_tool_calls and not msg.tool_calls:
                    raise _malformed()
                for call in msg.tool_calls:
                    if call["name"] == "task":
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
