"""The device socket (``/api/v1/ws/device``): lifecycle and dispatch, nothing else.

The consumer accepts, routes each frame and cleans up; the heartbeat and the token expiry are one
timer per process (``heartbeat``), and the socket's channel-layer messages come from one reader per
process (``channel_inbox``): an idle socket holds one task, its ASGI receive loop.
Everything else is in a module of its own: authentication in
``middleware.DeviceSocketAuthMiddleware``; decoding, frame budget and validation in ``intake``
(raw text → a frame, a rejection or a drop); the hello and the socket's presence (device row,
capabilities, presence index, the replaced socket's notice, connect handlers, the presence flush's
entry and verdict) in ``hello``; tool calls in ``tool_calls`` (in flight in ``pending_calls``); the
channel-layer messages other processes send to this socket in ``layer_messages``; the session
handlers get in ``session``; presence in ``presence`` (database history) and ``presence_index``
(Redis: who is online, and where); request streams in ``streams``. The methods Channels or the
presence flush look up by name (``devices_*``, ``presence_entry``, ``presence_verdict``) only
delegate.

Frames the socket handles itself go through ``DeviceConsumer._routes``; any other type goes to
the registry of ``handlers``: a *request* runs as a task of its own with a numbered, resumable
stream and outlives the socket; a *message* is handed over with no stream. Any failure of the
socket's own code ends in a clean close.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from pydantic import BaseModel

from apps.core.errors import ApplicationError, CoreErrorCode
from apps.core.redis_outage import REDIS_UNAVAILABLE_ERRORS, redis_outage_noted

from . import channel_inbox, drain, handlers, heartbeat, hello, layer_messages, streams, tool_calls
from .answer_frames import AnswerBook
from .channel_layer import loop_layer
from .close_codes import DeviceCloseCode
from .error_codes import DevicesErrorCode
from .errors import DeviceDisconnectedError
from .frames import DeviceHello, ToolResult, capability_required, outgoing_json, parse_outgoing
from .hot_settings import hot_setting
from .intake import BudgetOutcome, BudgetVerdict, Dropped, Rejected, frame_intake
from .middleware import authenticate
from .pending_calls import PendingCalls
from .presence import PresenceEntry, SessionState
from .rate_limit import FrameBudget
from .session import Session

logger = logging.getLogger(__name__)

_HANDLER_FAILED = "The request failed on the server."

# Tasks that must outlive the socket that started them (referenced until done).
_detached: set[asyncio.Future] = set()


def _keep(task: asyncio.Future) -> None:
    _detached.add(task)
    task.add_done_callback(_detached.discard)


def _background_left(task: asyncio.Future) -> None:
    """Done-callback of a socket's task let go of at teardown: its failure is logged, nothing more."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("device socket: a task of a closed socket failed", exc_info=task.exception())


async def _run_request(handler: handlers.FrameHandler, session: Session, frame: Any) -> None:
    """Run one request to its end; it is not cancelled by a dropped socket, only by ``cancel``."""
    stream = session.stream
    assert stream is not None
    try:
        await handler(session, frame)
    except asyncio.CancelledError:
        pass  # a ``cancel`` frame: the handler already ended its stream
    except ApplicationError as exc:
        stream.emit({"type": "error", "request_id": stream.request_id, "code": str(exc.code), "message": exc.message})
    except Exception:
        logger.exception("device socket: %s handler failed", frame.type)
        stream.emit(
            {
                "type": "error",
                "request_id": stream.request_id,
                "code": DevicesErrorCode.INTERNAL_ERROR,
                "message": _HANDLER_FAILED,
            }
        )
    finally:
        stream.finish()


async def _run_message(session: Session, handler: handlers.FrameHandler, frame: Any, request_id: str) -> None:
    """Hand one message over; a refusal goes straight back to the socket (nothing to resume). Only the
    session refers to the socket, weakly: a handler stuck for ever does not keep it in memory."""
    try:
        await handler(session, frame)
    except ApplicationError as exc:
        await session.send_error(str(exc.code), exc.message, request_id)
    except Exception:
        logger.exception("device socket: %s handler failed", frame.type)
        await session.send_error(DevicesErrorCode.INTERNAL_ERROR, _HANDLER_FAILED, request_id)


class DeviceConsumer(AnswerBook, AsyncWebsocketConsumer):
    # Frame types the socket itself handles (filled in below the class); any other type goes to the
    # handler registry (``_on_registered``).
    _routes: ClassVar[dict[str, Callable[[DeviceConsumer, Any], Awaitable[None]]]]
    hello_timer: asyncio.TimerHandle
    # A device socket joins no group (devices are addressed by channel): no empty list per socket.
    groups: ClassVar[tuple[str, ...]] = ()
    # Negotiated at hello; none for a seed client (one empty set for all: each frozenset() is a new one).
    capabilities: frozenset[str] = frozenset()
    # Tasks running beside the receive loop (``spawn``): made on the first, dropped when the last ends
    # (an idle socket has none; an empty set is 216 bytes).
    background: set[asyncio.Future] | None = None
    pending: PendingCalls  # the tool calls in flight: one kind of call whose answers are awaited (AnswerBook)
    # Message handlers still running (answers among them pace the socket); made on the first.
    messages: set[asyncio.Future] | None = None
    # While the socket has stopped reading (answer handlers full): since when (monotonic), else 0.
    reading_paused_at: float = 0.0
    # While the hello re-opens the calls of an earlier socket (``hello.reopened_answers_wait``).
    reopening: asyncio.Future | None = None
    # While the receive loop waits for its answer handlers: the teardown ends the wait.
    unpaused: asyncio.Future | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        # As AsyncConsumer.__call__, but with one task per socket instead of three: the socket's
        # channel-layer messages come from the loop's one reader (``channel_inbox``) through
        # ``layer_message``, not from a receive task of its own. The channel layer is the running
        # loop's instance: channels-redis refuses two event loops receiving on one instance, and
        # one process can run several loops (tests, an embedded server beside a worker).
        self.scope = scope
        self.channel_layer = loop_layer()
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        self.accepted = False
        self.dispatching = False  # a frame of the socket is being handled: layer messages wait
        self.layer_inbox: collections.deque[dict | BaseException] | None = None  # made on the first one
        self.layer_turn: asyncio.Task | None = None  # hands the waiting layer messages over
        channel_inbox.inbox_join(self)
        try:
            while True:
                message = await receive()
                # One message at a time, as Channels gave: the socket's frames and its layer
                # messages never run side by side (a call waits behind the hello).
                while self.layer_turn is not None:
                    await self.layer_turn
                self.dispatching = True
                try:
                    await self.dispatch(message)
                finally:
                    self.dispatching = False
                if self.layer_inbox:
                    self._hand_over_layer_messages()
        except StopConsumer:
            pass  # not ``contextlib.suppress``: its object would live as long as the socket
        finally:
            channel_inbox.inbox_leave(self)
            if self.layer_turn is not None:
                self.layer_turn.cancel()

    def layer_message(self, message: dict | BaseException) -> None:
        """A channel-layer message for this socket (or the layer's failure), from ``channel_inbox``."""
        if self.layer_inbox is None:
            # Bounded like channels-redis' own per-channel buffer: the oldest goes when it is full.
            self.layer_inbox = collections.deque(maxlen=getattr(self.channel_layer, "capacity", 100))
        self.layer_inbox.append(message)
        if not self.dispatching and self.layer_turn is None:
            self._hand_over_layer_messages()

    def _hand_over_layer_messages(self) -> None:
        self.layer_turn = asyncio.ensure_future(self._layer_turn())

    async def _layer_turn(self) -> None:
        try:
            while self.layer_inbox:
                message = self.layer_inbox.popleft()
                if isinstance(message, BaseException):
                    # The channel layer's Redis is gone (even before the handshake was answered):
                    # close with a code the client retries on, never a dropped connection.
                    redis_outage_noted(where="device_socket", exc=message)
                    await self._close_unavailable()
                    continue
                with contextlib.suppress(StopConsumer):
                    await self.dispatch(message)
        finally:
            self.layer_turn = None

    async def dispatch(self, message: dict) -> None:
        # Channels >= 4.2 runs close_old_connections in a thread before every handler; nothing here
        # touches the ORM outside database_sync_to_async (which cleans up itself), so skip that hop.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            logger.warning("device socket: no handler for %s", message["type"])
            return
        try:
            await handler(message)
        except StopConsumer:
            raise
        except REDIS_UNAVAILABLE_ERRORS as exc:
            redis_outage_noted(where="device_socket", exc=exc)
            await self._close_unavailable()
        except Exception:
            # Never leave a half-dead socket behind (presence would keep it "online"): close and clean up.
            logger.exception("device socket: %s failed; closing the socket", message["type"])
            await self.close_with(DeviceCloseCode.SERVER_ERROR)
            await self._teardown()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        try:
            await super().accept(subprotocol, headers)
        except OSError:
            # The server refuses to answer a handshake whose client is gone (uvicorn's
            # ClientDisconnected): nothing was started yet, and a storm brings many; not a failure.
            logger.debug("device socket: the client left before the handshake was answered")
            raise StopConsumer from None
        self.accepted = True

    async def _close_unavailable(self) -> None:
        """Redis is unavailable: accept if the handshake is still open (a refused handshake carries no
        code), close with ``TRY_AGAIN_LATER`` and clean up what this socket had started."""
        with contextlib.suppress(Exception):
            if not self.accepted:
                await self.accept()
        if hasattr(self, "torn_down"):  # websocket_connect ran
            await self.close_with(DeviceCloseCode.TRY_AGAIN_LATER)
            await self._teardown()
        else:
            with contextlib.suppress(Exception):
                await self.close(code=int(DeviceCloseCode.TRY_AGAIN_LATER))

    async def websocket_connect(self, message: dict) -> None:
        self.user = self.scope.get("user")
        self.user_id = str(self.user.id) if self.user is not None else ""
        self.device_id = ""
        self.agent_ids: list[str] = []
        self.hello_done = False
        self.node_name = ""
        self.closing = False
        self.torn_down = False
        self.last_seen = time.time()
        self.pending = PendingCalls()
        self.token_expires_at = 0.0  # the heartbeat closes the socket at this time (``heartbeat``)
        self.pong_due = 0.0  # until when the heartbeat waits for this socket's pong (0: none asked)
        self.budget = FrameBudget(
            rate=settings.DEVICE_FRAME_RATE,
            burst=settings.DEVICE_FRAME_BURST,
            close_after=settings.DEVICE_FLOOD_CLOSE_AFTER,
        )
        await self.accept()
        if drain.draining():  # this process is stopping: the device connects to another one
            await self.close_with(DeviceCloseCode.SERVICE_RESTART, reason=drain.reconnect_reason())
            return
        failure = self.scope.get("device_auth_failure")
        if failure is not None or self.user is None:
            await self.close_with(failure or DeviceCloseCode.UNAUTHENTICATED)
            return
        loop = asyncio.get_running_loop()
        self.hello_timer = loop.call_later(settings.DEVICE_HELLO_TIMEOUT, self._hello_timeout)
        self._schedule_expiry()

    @property
    def accepting_calls(self) -> bool:
        return self.hello_done and not self.closing

    async def websocket_disconnect(self, message: dict) -> None:
        await self._teardown()
        raise StopConsumer()

    async def close_with(self, code: int, *, reason: str | None = None) -> None:
        """Close the socket with ``code`` (and ``reason``) and fail everything in flight."""
        if self.closing:
            return
        self.closing = True
        self._fail_pending()
        with contextlib.suppress(Exception):
            await self.close(code=int(code), reason=reason)

    def spawn(self, coro: Any) -> asyncio.Future:
        """Run ``coro`` beside the receive loop; cancelled on teardown; a failure closes the socket."""
        task = asyncio.ensure_future(coro)
        if self.background is None:
            self.background = set()
        self.background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Future) -> None:
        if self.background is not None:
            self.background.discard(task)
            if not self.background:
                self.background = None
        if task.cancelled() or task.exception() is None:
            return
        logger.error("device socket: a background task failed; closing the socket", exc_info=task.exception())
        if not self.torn_down:
            _keep(asyncio.ensure_future(self._fail_hard()))

    async def _fail_hard(self) -> None:
        await self.close_with(DeviceCloseCode.SERVER_ERROR)
        await self._teardown()

    def spawn_close(self, code: int) -> None:
        if not self.closing:
            self.spawn(self.close_with(code))

    def _hello_timeout(self) -> None:
        if not self.hello_done:
            self.spawn_close(DeviceCloseCode.HELLO_TIMEOUT)

    def token_expired(self) -> None:
        """The access token this socket was opened (or last ``auth``-ed) with has expired (``heartbeat``)."""
        self.spawn_close(DeviceCloseCode.TOKEN_EXPIRED)

    async def _teardown(self) -> None:
        if self.torn_down:
            return
        self.torn_down = True
        self.closing = True
        if hasattr(self, "hello_timer"):  # set once the handshake was authenticated
            self.hello_timer.cancel()
        self.token_expires_at = 0.0
        self._let_go_of_background()
        self._fail_pending()
        self.calls_forgotten()
        self._unpause()
        streams.detach_everywhere(self)  # requests keep running; a resume picks them up
        await hello.presence_leave(self)

    def _let_go_of_background(self) -> None:
        """Cancel the tasks beside the receive loop and let go of them: their done-callbacks no longer
        refer to the socket, so one deaf to its cancellation (a connect handler, say) is all that is
        left of it. A failure after this is only logged."""
        background, current = self.background or set(), asyncio.current_task()
        for task in list(background):
            if task is not current:
                task.cancel()
                task.remove_done_callback(self._background_done)
                task.add_done_callback(_background_left)
                background.discard(task)
        self.background = background or None

    def _unpause(self) -> None:
        """Let go of the answer handlers still running: the receive loop stops waiting for them and
        their done-callbacks no longer refer to the socket. They run on (a message already received
        is handed over) and, if stuck for ever, are all that is left of the socket."""
        if self.unpaused is not None and not self.unpaused.done():
            self.unpaused.set_result(None)
        for task in self.messages or ():
            task.remove_done_callback(self._message_done)
        self.messages = None

    def _fail_pending(self) -> None:
        for waiter in self.pending.fail_all(DeviceDisconnectedError()):
            # Not a socket task: the answer must outlive the teardown.
            failure = tool_calls.failure(DeviceDisconnectedError(), waiter.call_id)
            _keep(asyncio.ensure_future(tool_calls.answer(waiter.reply_to, failure)))

    # --- sending ------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Send an already serialized frame; DeviceDisconnectedError if the socket is gone."""
        if self.closing:
            raise DeviceDisconnectedError()
        try:
            # The ASGI send itself: Channels' ``send(text_data=)`` only builds this message, two calls deep.
            await self.base_send({"type": "websocket.send", "text": text})
        except OSError as exc:  # the server's "client disconnected" (uvicorn) before our disconnect event
            self.closing = True
            raise DeviceDisconnectedError() from exc

    async def send_frame(self, frame: dict[str, Any] | BaseModel) -> None:
        """Send a frame, unless it needs a capability this socket did not negotiate (then it is
        dropped: an old client never sees a frame it was not promised)."""
        model = parse_outgoing(frame)
        needed = capability_required(model.type)  # type: ignore[attr-defined]
        if needed is not None and needed not in self.capabilities:
            return
        self.frame_sent(model)  # before it goes: the answer may come back at once
        await self.send_text(outgoing_json(model))

    async def send_error(self, code: str, message: str, request_id: str | None = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
        if request_id is not None:
            frame["request_id"] = request_id
        with contextlib.suppress(DeviceDisconnectedError):
            await self.send_frame(frame)

    # --- receiving ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        self.last_seen = time.time()
        if self.reopening is not None and text_data is not None:
            await hello.reopened_answers_wait(self, text_data)
            if self.closing:
                return
        intake = frame_intake(
            text_data,
            bytes_data,
            budget=self.budget,
            max_bytes=hot_setting("DEVICE_MAX_FRAME_BYTES"),
            awaited=self,
        )
        if isinstance(intake, Dropped):
            self._dropped(intake.verdict)
        elif isinstance(intake, Rejected):
            await self._reject(intake.code, intake.message, intake.request_id)
        elif not self.hello_done:
            if isinstance(intake.frame, DeviceHello):
                await self._hello(intake.frame)
            else:
                await self.send_error(DevicesErrorCode.HELLO_REQUIRED, "The first frame must be device_hello.")
                await self.close_with(DeviceCloseCode.BAD_HELLO)
        else:
            route = self._routes.get(intake.frame_type, DeviceConsumer._on_registered)
            await route(self, intake.frame)
            if intake.answer and self.messages and len(self.messages) >= hot_setting("DEVICE_ANSWERS_IN_FLIGHT"):
                # Answers spend no budget: stop reading until their handlers catch up.
                with heartbeat.reading_paused(self):
                    await self._paused_for_answers()

    def _dropped(self, verdict: BudgetVerdict) -> None:
        if verdict.outcome is BudgetOutcome.DROP_AND_WARN:
            self.spawn(self.send_error(DevicesErrorCode.RATE_LIMITED, "Too many frames; some were dropped. Slow down."))
        elif verdict.outcome is BudgetOutcome.CLOSE:
            self.spawn_close(DeviceCloseCode.RATE_LIMITED)

    async def _reject(self, code: str, message: str, request_id: str | None = None) -> None:
        await self.send_error(code, message, request_id)
        if not self.hello_done:  # before the hello only a valid device_hello is acceptable
            await self.close_with(DeviceCloseCode.BAD_HELLO)

    # --- routes ---------------------------------------------------------------------------

    async def _on_hello_again(self, frame: DeviceHello) -> None:
        await self.send_error(DevicesErrorCode.INVALID_FRAME, "device_hello was already received.")

    async def _on_ping(self, frame: Any) -> None:
        await self.send_frame({"type": "pong"})

    async def _on_pong(self, frame: Any) -> None:
        self.pong_due = 0.0

    async def _on_cancel(self, frame: Any) -> None:
        stream = streams.stream_get(user_id=self.user_id, request_id=frame.request_id)
        if stream is None or stream.task is None or stream.task.done():
            await self.send_error(
                DevicesErrorCode.UNKNOWN_REQUEST, "No running request has this request_id.", frame.request_id
            )
            return
        stream.task.cancel()

    async def _on_resume(self, frame: Any) -> None:
        found = await streams.stream_resume(
            target=self, user_id=self.user_id, request_id=frame.request_id, after_seq=frame.after_seq
        )
        if not found:
            await self.send_error(
                DevicesErrorCode.STREAM_EXPIRED,
                "This request is unknown or its frames have expired; send the request again.",
                frame.request_id,
            )

    async def _on_auth(self, frame: Any) -> None:
        """Adopt a fresh access token of the same user: a new expiry and session to re-check."""
        outcome = await database_sync_to_async(authenticate)(frame.token)
        if outcome.user is None or str(outcome.user.id) != self.user_id:
            await self.send_error(CoreErrorCode.TOKEN_INVALID, "The token is not a valid access token of this user.")
            return
        self.scope["device_token_exp"] = outcome.token_exp
        self.scope["device_token_family"] = outcome.token_family
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        self.token_expires_at = float(self.scope["device_token_exp"])
        if self.token_expires_at <= time.time():
            self.token_expired()
        else:
            heartbeat.expiry_watch(self)

    # --- hello / presence (hello) -------------------------------------------------------------

    async def _hello(self, frame: DeviceHello) -> None:
        await hello.hello_received(self, frame)
        if self.hello_done:  # the hello cancelled its timer: let the loop free the handle when it is due
            del self.hello_timer

    def heartbeat_missed(self) -> None:
        """No pong within DEVICE_PONG_TIMEOUT of a ping (``heartbeat``): the device is gone."""
        self.spawn_close(DeviceCloseCode.HEARTBEAT_TIMEOUT)

    def reading_stalled(self) -> None:
        """The socket stopped reading for its answer handlers longer than the heartbeat excuses
        (``heartbeat.read_pause_max``): the handlers are stuck. Cancelling them lets the receive loop
        go on to the close; the device is closed as silent, as if its pong had not come.

        A handler may ignore its cancellation and keep the receive loop waiting for it: the close and
        the teardown do not wait for the loop. The connection and the device's presence go now;
        the loop reads the disconnect and ends when (if ever) the handler does."""
        logger.warning("device socket: %s stopped reading for stuck answer handlers; closing it", self.device_id or "?")
        for task in list(self.messages or ()):
            task.cancel()
        if not self.torn_down:  # even if already closing: its teardown would wait for the loop too
            _keep(asyncio.ensure_future(self._close_stalled()))

    async def _close_stalled(self) -> None:
        await self.close_with(DeviceCloseCode.HEARTBEAT_TIMEOUT)
        await self._teardown()

    async def _paused_for_answers(self) -> None:
        """Until one of the answer handlers ends, or the socket is torn down (``unpaused``): a handler
        deaf to its cancellation must not keep the receive loop, and so the socket, for ever."""
        self.unpaused = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait({*(self.messages or ()), self.unpaused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.unpaused = None

    def presence_entry(self) -> PresenceEntry:
        return hello.presence_entry(self)

    def presence_verdict(self, *, holds: bool, state: SessionState) -> None:
        hello.presence_verdict(self, holds=holds, state=state)

    # --- registered frames (requests and messages) -------------------------------------------

    async def _on_registered(self, frame: Any) -> None:
        if getattr(frame, "request_id", None) is None:
            frame.request_id = uuid.uuid4().hex
        request_id = frame.request_id
        registration = handlers.get_handler(frame.type)
        if registration is None:
            await self.send_error(
                DevicesErrorCode.NOT_IMPLEMENTED, f"{frame.type} is not available on this server.", request_id
            )
        elif registration.kind is handlers.FrameKind.MESSAGE:
            # Not a socket task: a message already received is handed over even if the socket drops.
            task = asyncio.ensure_future(_run_message(Session(self), registration.handler, frame, request_id))
            _keep(task)
            if self.messages is None:
                self.messages = set()
            self.messages.add(task)
            task.add_done_callback(self._message_done)
        else:
            await self._start_request(registration.handler, frame, request_id)

    def _message_done(self, task: asyncio.Future) -> None:
        if self.messages is not None:
            self.messages.discard(task)
            if not self.messages:
                self.messages = None  # as ``background``: no empty set kept per socket

    async def _start_request(self, handler: handlers.FrameHandler, frame: Any, request_id: str) -> None:
        if streams.stream_get(user_id=self.user_id, request_id=request_id) is not None:
            await self.send_error(
                DevicesErrorCode.DUPLICATE_REQUEST, "A request with this request_id is running.", request_id
            )
            return
        stream = await streams.stream_open(user_id=self.user_id, request_id=request_id)
        stream.attach(self, 0)
        stream.task = asyncio.ensure_future(_run_request(handler, Session(self, stream), frame))

    # --- tool calls (tool_calls) ------------------------------------------------------------

    async def local_call(self, call: dict, *, timeout: float) -> dict:  # noqa: ASYNC109
        return await tool_calls.local_call(self, call, timeout=timeout)

    async def _on_tool_result(self, result: ToolResult) -> None:
        await tool_calls.tool_result_received(self, result)

    # --- channel layer messages (from other processes) ------------------------------------

    def addressed_to_me(self, message: dict) -> bool:
        return message.get("user_id") == self.user_id and message.get("device_id") == self.device_id

    async def devices_tool_call(self, message: dict) -> None:
        await layer_messages.on_tool_call(self, message)

    async def devices_tool_cancel(self, message: dict) -> None:
        await layer_messages.on_tool_cancel(self, message)

    async def devices_send_frame(self, message: dict) -> None:
        await layer_messages.on_send_frame(self, message)

    async def devices_stream_frame(self, message: dict) -> None:
        await layer_messages.on_stream_frame(self, message)

    async def devices_replaced(self, message: dict) -> None:
        await layer_messages.on_replaced(self, message)

    async def devices_close(self, message: dict) -> None:
        await layer_messages.on_close(self, message)


DeviceConsumer._routes = {
    "device_hello": DeviceConsumer._on_hello_again,
    "ping": DeviceConsumer._on_ping,
    "pong": DeviceConsumer._on_pong,
    "tool_result": DeviceConsumer._on_tool_result,
    "cancel": DeviceConsumer._on_cancel,
    "resume": DeviceConsumer._on_resume,
    "auth": DeviceConsumer._on_auth,
}
