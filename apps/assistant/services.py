"""One chat turn with a supervisor, shared by the socket (streaming) and REST (collected) doors.

``chat_run`` reads top to bottom as its steps: validate the message, start reading memory (what
needs no model request) while it takes the budget's hold, open the request context the tools use,
start the graph's sanitized answer to a sink (``_answer_stream``, with ``AnnouncedAnswer`` holding a
Floating turn's text until its domain is named) while the system prompt is built
(``_system_prompt``: a Floating scope looked up on the device, what memory recalls, with the
query's embedding made once the budget admitted the turn; the first model call waits for it),
release the hold (the turn's usage recorded, a
usage notice sent if one is due), then start storing the episode in memory: the turn returns with
that write still running (``ChatOutcome.remembered``), so the socket ends the stream before it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

from apps.billing.budgets import llm_budgeted_async
from apps.billing.metering import LlmPurpose
from apps.core.errors import ApplicationError
from apps.devices.errors import DeviceCallError
from apps.memory.selectors import MemoryContext

from . import prompts
from .conversation import agent_events
from .device_calls import ChatRequestContext, DeviceUnavailable, chat_request, execute_on_client
from .error_codes import AssistantErrorCode
from .kinds import ChatKind
from .llm import llm_configuration_check
from .memory_bridge import episode_remember_start, memory_prompt_fragment, memory_recall_start
from .sanitizer import StreamSanitizer

logger = logging.getLogger(__name__)

# Scope types the client sends (singular or plural) → the client table holding them.
SCOPE_TABLES = {
    "task": "tasks",
    "tasks": "tasks",
    "project": "projects",
    "projects": "projects",
    "timeline": "timelines",
    "timelines": "timelines",
    "note": "notes",
    "notes": "notes",
}


class ChatSink(Protocol):
    """Where a turn's output goes: the socket frames, or a REST answer being collected."""

    async def domain(self, domain: str) -> None: ...

    async def start(self) -> None: ...

    async def text(self, chunk: str) -> None: ...


@dataclass
class ChatOutcome:
    answer: str
    mutations: list[dict[str, Any]] = field(default_factory=list)
    faults: list[DeviceCallError] = field(default_factory=list)
    # The episode's write, started as the turn returned and maybe still running.
    remembered: asyncio.Future[None] | None = None

    async def remembered_wait(self) -> None:
        """Wait for the episode's write; cancelling the waiter leaves the write running to its end."""
        if self.remembered is not None:
            await asyncio.shield(self.remembered)


def message_validate(message: Any) -> str:
    if not isinstance(message, str) or not message.strip():
        raise ApplicationError(
            AssistantErrorCode.MESSAGE_EMPTY, "The message is empty.", status=400, fields={"message": ["Required."]}
        )
    limit = settings.ASSISTANT_MAX_MESSAGE_CHARS
    if len(message) > limit:
        reason = f"At most {limit} characters (got {len(message)})."
        raise ApplicationError(
            AssistantErrorCode.MESSAGE_TOO_LONG,
            f"The message is too long: {reason}",
            status=400,
            fields={"message": [reason]},
        )
    return message


def scope_table(scope_type: Any) -> str | None:
    """The client table a scope type names; None for a scope without one (the client's other views)."""
    if scope_type is not None and not isinstance(scope_type, str):
        raise ApplicationError(
            AssistantErrorCode.SCOPE_INVALID,
            "The scope type must be text, such as task, project, timeline or note.",
            status=400,
            fields={"scope.type": ["Text."]},
        )
    return SCOPE_TABLES.get((scope_type or "").strip().lower())


def _scope_parts(scope: Any) -> tuple[Any, Any]:
    if scope is None:
        return None, None
    if not isinstance(scope, dict) or not isinstance(scope.get("id"), str | None):
        raise ApplicationError(
            AssistantErrorCode.SCOPE_INVALID,
            "The scope is an object {type, id?} with text values.",
            status=400,
            fields={"scope": ["An object {type, id?}."]},
        )
    return scope.get("type"), scope.get("id")


async def _scope_row(*, table: str, scope_id: str | None) -> dict[str, Any] | None:
    """The scoped row as the user's device holds it; ``scope_not_found`` when it has none."""
    if not scope_id:
        return None
    try:
        result = await execute_on_client(action="get", table=table, data={"id": scope_id})
    except DeviceUnavailable as exc:
        fault = exc.__cause__
        if isinstance(fault, ApplicationError):
            raise ApplicationError(fault.code, exc.sentence, status=fault.status) from exc
        raise
    row = result.get("row")
    if not isinstance(row, dict):
        # Another user's id is simply absent from this user's device: the same answer either way.
        raise ApplicationError(
            AssistantErrorCode.SCOPE_NOT_FOUND, f"No {table[:-1]} with id {scope_id} exists on your device.", status=404
        )
    return row


# The domain a Floating turn announces when no sub-agent was called, as the earlier backend did.
DEFAULT_DOMAIN = "tasks"


async def chat_run(
    *,
    user_id: Any,
    kind: ChatKind,
    message: Any,
    request_id: str,
    sink: ChatSink,
    history: list[dict[str, Any]] | None = None,
    scope: dict[str, Any] | None = None,
    device_id: str | None = None,
    session_id: str | None = None,
    context_fragment: str = "",
) -> ChatOutcome:
    message = message_validate(message)
    llm_configuration_check()
    ctx = ChatRequestContext(user_id=user_id, request_id=request_id, device_id=device_id)
    purpose = LlmPurpose.FLOATING if kind == ChatKind.FLOATING else LlmPurpose.CHAT
    # A database read and no model request: it need not wait for the budget's hold, taken meanwhile.
    recalled = memory_recall_start(user_id=user_id)
    try:
        # The turn's calls are stored when it ends, with its hold's release: nothing on the way to the first token.
        async with llm_budgeted_async(user_id=user_id, purpose=purpose, run_id=request_id, defer_records=True):
            with chat_request(ctx):
                answer = AnnouncedAnswer(sink=sink, hold_until_announced=kind == ChatKind.FLOATING)
                # The graph starts while the prompt is assembled (the memory lookup may wait on the embedding
                # model and the database); its first model call waits for the prompt, sent after stream_start.
                prompt: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                streaming = asyncio.ensure_future(
                    _answer_stream(
                        ctx=ctx, kind=kind, message=message, history=history, system_prompt=prompt, answer=answer
                    )
                )
                try:
                    text = await _system_prompt(
                        user_id=user_id,
                        kind=kind,
                        message=message,
                        scope=scope,
                        context_fragment=context_fragment,
                        recalled=recalled,
                    )
                    await answer.open()
                    prompt.set_result(text)
                    await streaming
                finally:
                    await _stopped(streaming, prompt)
            outcome = ChatOutcome(answer=answer.text, mutations=list(ctx.mutations), faults=list(ctx.faults))
    finally:
        await _stopped(recalled)
    # After the hold's release, whose records and notice come before the caller's end of the answer;
    # the episode's write need not (nothing the user sees next depends on it being in already).
    outcome.remembered = episode_remember_start(
        user_id=user_id, session_id=session_id or request_id, message=message, answer=outcome.answer
    )
    return outcome


async def _stopped(task: asyncio.Future[Any], prompt: asyncio.Future[str] | None = None) -> None:
    """The turn's task (its answer, its memory read) has ended: cancelled, and waited for, when the
    turn failed or was cancelled before it did (a refused budget, a prompt that failed, a cancel
    frame); its prompt never left waiting."""
    if prompt is not None:
        prompt.cancel()  # nothing once set
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved: a failure the turn never awaited (a refused budget) is not logged as lost
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _system_prompt(
    *,
    user_id: Any,
    kind: ChatKind,
    message: str,
    scope: dict[str, Any] | None,
    context_fragment: str,
    recalled: asyncio.Future[tuple[MemoryContext, bool]],
) -> str:
    """The turn's system prompt: a Floating turn's scope (looked up on the device) and what memory
    recalls for the message (``recalled``: ``memory_recall_start``'s read); a Home turn's client context."""
    if kind == ChatKind.FLOATING:
        scope_text = await _floating_scope_fragment(scope)
        memory_text = await memory_prompt_fragment(user_id=user_id, message=message, recalled=recalled)
        return prompts.floating_system_prompt(scope_fragment=scope_text, memory_fragment=memory_text)
    memory_text = await memory_prompt_fragment(user_id=user_id, message=message, recalled=recalled)
    return prompts.home_system_prompt(memory_fragment=memory_text, context_fragment=context_fragment)


async def _floating_scope_fragment(scope: dict[str, Any] | None) -> str:
    """The prompt's words for a Floating scope: the scoped row when the scope names a client table."""
    scope_type, scope_id = _scope_parts(scope)
    table = scope_table(scope_type)
    if table is None:
        return prompts.general_scope_fragment(scope_type=str(scope_type or ""), scope_id=scope_id)
    row = await _scope_row(table=table, scope_id=scope_id)
    return prompts.scope_fragment(scope_type=table[:-1], scope_id=scope_id, row=row)


async def _answer_stream(
    *,
    ctx: ChatRequestContext,
    kind: ChatKind,
    message: str,
    history: list[dict[str, Any]] | None,
    system_prompt: str | asyncio.Future[str],
    answer: AnnouncedAnswer,
) -> None:
    """Run the graph and push its sanitized text to the opened ``answer``."""
    sanitizer = StreamSanitizer()
    async for event, value in agent_events(kind=kind, message=message, history=history, system_prompt=system_prompt):
        if event == "subagent":
            ctx.subagents_used.append(value)
            await answer.announce(prompts.SUBAGENT_DOMAINS.get(value, DEFAULT_DOMAIN))
        else:
            await answer.write(sanitizer.feed(value))
    await answer.announce(DEFAULT_DOMAIN)
    await answer.write(sanitizer.flush())


class AnnouncedAnswer:
    """The answer on its way to the sink. A Floating turn names its domain before any text (the first
    sub-agent it calls, or the default at the end), so its text is held until then; a Home turn
    starts at once and announces nothing."""

    def __init__(self, *, sink: ChatSink, hold_until_announced: bool) -> None:
        self._sink = sink
        self._announced = not hold_until_announced
        self._held: list[str] = []
        self._sent: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._sent)

    async def open(self) -> None:
        if self._announced:
            await self._sink.start()

    async def announce(self, domain: str) -> None:
        """Name the domain and release the held text; only the first announcement counts."""
        if self._announced:
            return
        self._announced = True
        await self._sink.domain(domain)
        await self._sink.start()
        held, self._held = self._held, []
        for chunk in held:
            await self.write(chunk)

    async def write(self, chunk: str) -> None:
        if not chunk:
            return
        if not self._announced:
            self._held.append(chunk)
            return
        self._sent.append(chunk)
        await self._sink.text(chunk)


class CollectingSink:
    """The REST door's sink: keeps the sanitized text."""

    def __init__(self) -> None:
        self.chunks: list[str] = []

    async def domain(self, domain: str) -> None:
        return None

    async def start(self) -> None:
        return None

    async def text(self, chunk: str) -> None:
        self.chunks.append(chunk)


async def chat_reply(
    *,
    user_id: Any,
    message: Any,
    history: list[dict[str, Any]] | None,
    request_id: str,
    context: dict[str, Any] | None = None,
) -> str:
    """The Home agent's complete answer, for ``POST chat``; ``context`` is the app's user_profile,
    relevant_documents and recent_tasks (fenced as data in the prompt)."""
    context = context or {}
    context_fragment = prompts.client_context_fragment(
        user_profile=context.get("user_profile"),
        relevant_documents=context.get("relevant_documents"),
        recent_tasks=context.get("recent_tasks"),
    )
    sink = CollectingSink()
    try:
        async with asyncio.timeout(settings.ASSISTANT_REQUEST_TIMEOUT):
            outcome = await chat_run(
                user_id=user_id,
                kind=ChatKind.HOME,
                message=message,
                request_id=request_id,
                sink=sink,
                history=history,
                session_id=f"rest:{request_id}",
                context_fragment=context_fragment,
            )
    except TimeoutError as exc:
        raise ApplicationError(
            AssistantErrorCode.REQUEST_TIMEOUT, "The assistant did not finish in time; please try again.", status=504
        ) from exc
    await outcome.remembered_wait()  # a REST request's event loop may end with the response
    return outcome.answer
