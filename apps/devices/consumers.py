"""The device socket (``/api/v1/ws/device``): hello, heartbeat, presence, tool calls, request routing.

Thin by design: authentication is done by ``middleware.DeviceSocketAuthMiddleware``, presence
writes by ``presence``, requests by the handlers other apps register in ``handlers``. The
receive loop never awaits a handler: each request frame runs as its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.conf import settings
from pydantic import BaseModel, ValidationError

from apps.core.errors import ApplicationError, CoreErrorCode

from . import connections, handlers, presence_flusher, services
from .close_codes import DeviceCloseCode
from .error_codes import DevicesErrorCode
from .errors import DeviceDisconnectedError, DeviceTimeoutError, DeviceToolError
from .frames import DeviceHello, ToolCall, ToolResult, is_incoming_type, is_request_type, outgoing_json, parse_incoming
from .middleware import authenticate
from .presence import SessionState, device_connect, device_disconnect

logger = logging.getLogger(__name__)

_CLOSE_FOR_STATE = {
    SessionState.REVOKED: DeviceCloseCode.SESSION_REVOKED,
    SessionState.DEACTIVATED: DeviceCloseCode.USER_DEACTIVATED,
}


@dataclass
class _PendingCall:
    deadline: float
    future: asyncio.Future | None = None  # a caller on this loop
    reply_channel: str | None = None  # a caller elsewhere, reached through the channel layer


class _Session:
    """The handler-facing view of one socket (see ``handlers.DeviceSession``)."""

    def __init__(self, consumer: DeviceConsumer) -> None:
        self._consumer = consumer
        self.user = consumer.user
        self.user_id = consumer.user_id
        self.device_id = consumer.device_id
        self.agent_ids = consumer.agent_ids

    async def send(self, frame: dict[str, Any] | BaseModel) -> None:
        """Validate ``frame`` against the outgoing models and send it; DeviceDisconnectedError if closed."""
        await self._consumer.send_frame(frame)

    async def call(self, **kwargs: Any) -> dict:
        """``call_device`` on this very device."""
        return await services.call_device(user_id=self.user_id, device_id=self.device_id, **kwargs)


class DeviceConsumer(AsyncWebsocketConsumer):
    # --- lifecycle ------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        # As AsyncConsumer.__call__, but with the channel layer instance of the running loop:
        # channels-redis refuses two event loops receiving on one instance, and one process can
        # run several loops (tests, an embedded server beside a worker).
        self.scope = scope
        self.channel_layer = services.loop_layer()
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch([receive, self.channel_receive], self.dispatch)

    async def websocket_connect(self, message: dict) -> None:
        self.user = self.scope.get("user")
        self.user_id = str(self.user.id) if self.user is not None else ""
        self.device_id = ""
        self.agent_ids: list[str] = []
        self.session: _Session | None = None
        self.closing = False
        self.torn_down = False
        self.last_seen = time.time()
        self.pending: dict[str, _PendingCall] = {}
        self.requests: dict[str, asyncio.Task] = {}
        self.background: set[asyncio.Future] = set()
        self.timers: list[asyncio.TimerHandle] = []
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.pong_received = asyncio.Event()
        self.bucket = float(settings.DEVICE_FRAME_BURST)
        self.bucket_at = time.monotonic()
        self.dropped = 0
        await self.accept()
        failure = self.scope.get("device_auth_failure")
        if failure is not None or self.user is None:
            await self.close_with(failure or DeviceCloseCode.UNAUTHENTICATED)
            return
        loop = asyncio.get_running_loop()
        self.timers.append(loop.call_later(settings.DEVICE_HELLO_TIMEOUT, self._hello_timeout))
        self._schedule_expiry()

    @property
    def accepting_calls(self) -> bool:
        return self.session is not None and not self.closing

    async def dispatch(self, message: dict) -> None:
        # Channels >= 4.2 runs close_old_connections in a thread before every handler; nothing here
        # touches the ORM outside database_sync_to_async (which cleans up itself), so skip that hop.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            logger.warning("device socket: no handler for %s", message["type"])
            return
        await handler(message)

    async def websocket_disconnect(self, message: dict) -> None:
        await self._teardown()
        raise StopConsumer()

    async def close_with(self, code: int) -> None:
        """Close the socket with ``code`` and fail everything in flight."""
        if self.closing:
            return
        self.closing = True
        self._fail_pending()
        with contextlib.suppress(Exception):
            await self.close(code=int(code))

    def _spawn(self, coro: Any) -> asyncio.Future:
        """Run ``coro`` beside the receive loop; cancelled on teardown."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def _spawn_close(self, code: int) -> None:
        if not self.closing:
            self._spawn(self.close_with(code))

    def _hello_timeout(self) -> None:
        if self.session is None:
            self._spawn_close(DeviceCloseCode.HELLO_TIMEOUT)

    def _token_expired(self) -> None:
        self._spawn_close(DeviceCloseCode.TOKEN_EXPIRED)

    async def _teardown(self) -> None:
        if self.torn_down:
            return
        self.torn_down = True
        self.closing = True
        for timer in self.timers:
            timer.cancel()
        current = asyncio.current_task()
        for task in [*self.background, *self.requests.values()]:
            if task is not current:
                task.cancel()
        self._fail_pending()
        if self.session is not None:
            connections.unregister(self)
            try:
                await database_sync_to_async(device_disconnect)(
                    user_id=self.user_id,
                    device_id=self.device_id,
                    channel_name=self.channel_name,
                    last_seen_at=datetime.fromtimestamp(self.last_seen, tz=UTC),
                )
            except Exception:
                logger.exception("device socket: could not record the disconnect")

    def _fail_pending(self) -> None:
        pending, self.pending = self.pending, {}
        for call_id, call in pending.items():
            if call.future is not None and not call.future.done():
                call.future.set_exception(DeviceDisconnectedError())
            elif call.reply_channel is not None:
                self._reply_later(call.reply_channel, _failure(DeviceDisconnectedError()), call_id)

    def _reply_later(self, reply_channel: str, message: dict, call_id: str) -> None:
        async def reply() -> None:
            try:
                await self.channel_layer.send(reply_channel, message)
            except Exception:
                logger.warning("device socket: could not answer call %s", call_id)

        self._spawn(reply())

    # --- sending ------------------------------------------------------------------------

    async def send_frame(self, frame: dict[str, Any] | BaseModel) -> None:
        text = outgoing_json(frame)
        if self.closing:
            raise DeviceDisconnectedError()
        try:
            await self.send(text_data=text)
        except OSError as exc:  # the server's "client disconnected" (uvicorn) before our disconnect event
            self.closing = True
            raise DeviceDisconnectedError() from exc

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
        if text_data is None:
            if self._take_token():
                await self.send_error(DevicesErrorCode.MALFORMED_FRAME, "Frames are JSON text, not binary.")
            return
        limit = settings.DEVICE_MAX_FRAME_BYTES
        if len(text_data) > limit or (len(text_data) * 4 > limit and len(text_data.encode()) > limit):
            if self._take_token():
                await self.send_error(DevicesErrorCode.FRAME_TOO_LARGE, f"Frames are limited to {limit} bytes.")
            return
        try:
            raw = json.loads(text_data)
        except ValueError:
            if self._take_token():
                await self._reject(DevicesErrorCode.MALFORMED_FRAME, "The frame is not valid JSON.")
            return
        frame_type = raw.get("type") if isinstance(raw, dict) else None
        # Answers to the server's own pending calls are bounded by the server; everything else
        # (including unknown tool_result ids) spends the client's frame budget.
        if not (frame_type == "tool_result" and raw.get("id") in self.pending) and not self._take_token():
            return
        if not is_incoming_type(frame_type):
            await self._reject(DevicesErrorCode.UNKNOWN_FRAME_TYPE, f"Unknown frame type {frame_type!r}.")
            return
        try:
            frame = parse_incoming(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"][1:]) or frame_type
            await self._reject(
                DevicesErrorCode.INVALID_FRAME,
                f"Invalid {frame_type} frame: {where}: {error['msg']}",
                request_id=raw.get("request_id") if isinstance(raw.get("request_id"), str) else None,
            )
            return
        if self.session is None:
            if isinstance(frame, DeviceHello):
                await self._hello(frame)
            else:
                await self.send_error(DevicesErrorCode.HELLO_REQUIRED, "The first frame must be device_hello.")
                await self.close_with(DeviceCloseCode.BAD_HELLO)
            return
        await self._route(frame)

    async def _reject(self, code: str, message: str, request_id: str | None = None) -> None:
        await self.send_error(code, message, request_id)
        if self.session is None:  # before the hello only a valid device_hello is acceptable
            await self.close_with(DeviceCloseCode.BAD_HELLO)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.bucket = min(
            float(settings.DEVICE_FRAME_BURST), self.bucket + (now - self.bucket_at) * settings.DEVICE_FRAME_RATE
        )
        self.bucket_at = now
        if self.bucket >= 1:
            self.bucket -= 1
            self.dropped = 0
            return True
        self.dropped += 1
        if self.dropped == 1:
            self._spawn(
                self.send_error(DevicesErrorCode.RATE_LIMITED, "Too many frames; some were dropped. Slow down.")
            )
        if self.dropped >= settings.DEVICE_FLOOD_CLOSE_AFTER:
            self._spawn_close(DeviceCloseCode.RATE_LIMITED)
        return False

    async def _route(self, frame: BaseModel) -> None:
        frame_type = frame.type  # type: ignore[attr-defined]
        if frame_type == "tool_result":
            await self._tool_result(frame)  # type: ignore[arg-type]
        elif frame_type == "pong":
            self.pong_received.set()
        elif frame_type == "ping":
            await self.send_frame({"type": "pong"})
        elif is_request_type(frame_type):
            self._start_request(frame)
        elif frame_type == "cancel":
            task = self.requests.get(frame.request_id)  # type: ignore[attr-defined]
            if task is None:
                await self.send_error(
                    DevicesErrorCode.UNKNOWN_REQUEST, "No running request has this request_id.", frame.request_id
                )
            else:
                task.cancel()
        elif frame_type == "auth":
            await self._reauthenticate(frame.token)  # type: ignore[attr-defined]
        elif frame_type == "device_hello":
            await self.send_error(DevicesErrorCode.INVALID_FRAME, "device_hello was already received.")

    async def _reauthenticate(self, raw_token: str) -> None:
        """Adopt a fresh access token of the same user: a new expiry and session to re-check."""
        outcome = await database_sync_to_async(authenticate)(raw_token)
        user = outcome["user"]
        if user is None or str(user.id) != self.user_id:
            await self.send_error(CoreErrorCode.TOKEN_INVALID, "The token is not a valid access token of this user.")
            return
        self.scope["device_token_exp"] = outcome["device_token_exp"]
        self.scope["device_token_family"] = outcome["device_token_family"]
        if self.expiry_timer is not None:
            self.expiry_timer.cancel()
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        expires_in = self.scope["device_token_exp"] - time.time()
        self.expiry_timer = asyncio.get_running_loop().call_later(max(expires_in, 0), self._token_expired)
        self.timers.append(self.expiry_timer)

    # --- hello / presence -----------------------------------------------------------------

    async def _hello(self, hello: DeviceHello) -> None:
        self.device_id = hello.device_id
        self.agent_ids = list(hello.agent_ids)
        try:
            _device, replaced = await database_sync_to_async(device_connect)(
                user=self.user,
                device_id=hello.device_id,
                channel_name=self.channel_name,
                agent_ids=self.agent_ids,
                name=hello.name,
                platform=hello.platform,
            )
        except Exception:
            logger.exception("device socket: could not record the hello")
            await self.send_error(DevicesErrorCode.INTERNAL_ERROR, "Could not register the device; reconnect.")
            await self.close_with(1011)
            return
        if replaced:
            with contextlib.suppress(ChannelFull):
                await self.channel_layer.send(
                    replaced, {"type": services.MSG_REPLACED, "user_id": self.user_id, "device_id": self.device_id}
                )
        self.session = _Session(self)
        connections.register(self)
        presence_flusher.ensure_running()
        self._spawn(self._heartbeat())
        for handler in handlers.connect_handlers():
            self._spawn(self._run_connect_handler(handler))

    async def _run_connect_handler(self, handler: handlers.ConnectHandler) -> None:
        try:
            await handler(self.session)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("device socket: connect handler %r failed", handler)

    async def _heartbeat(self) -> None:
        while not self.closing:
            await asyncio.sleep(settings.DEVICE_PING_INTERVAL)
            self.pong_received.clear()
            try:
                await self.send_frame({"type": "ping"})
                await asyncio.wait_for(self.pong_received.wait(), settings.DEVICE_PONG_TIMEOUT)
            except DeviceDisconnectedError:
                return
            except TimeoutError:
                await self.close_with(DeviceCloseCode.HEARTBEAT_TIMEOUT)
                return

    def presence_entry(self) -> tuple[str, str, str, float, str | None]:
        """What the process-wide presence flush (presence_flusher) needs from this socket."""
        return (self.user_id, self.device_id, self.channel_name, self.last_seen, self.scope.get("device_token_family"))

    def presence_verdict(self, *, holds: bool, state: SessionState) -> None:
        """Outcome of a presence flush: close if the session ended or another socket took the device."""
        self._sweep_expired_calls()
        if state is not SessionState.ACTIVE:
            self._spawn_close(_CLOSE_FOR_STATE[state])
        elif not holds:
            self._spawn_close(DeviceCloseCode.REPLACED)

    def _sweep_expired_calls(self) -> None:
        now = time.time()
        for call_id in [cid for cid, call in self.pending.items() if call.reply_channel and call.deadline < now]:
            del self.pending[call_id]

    # --- requests -----------------------------------------------------------------------

    def _start_request(self, frame: Any) -> None:
        if frame.request_id is None:
            frame.request_id = uuid.uuid4().hex
        request_id = frame.request_id
        handler = handlers.get_frame_handler(frame.type)
        if handler is None:
            self._spawn(
                self.send_error(
                    DevicesErrorCode.NOT_IMPLEMENTED, f"{frame.type} is not available on this server.", request_id
                )
            )
            return
        if request_id in self.requests:
            self._spawn(
                self.send_error(
                    DevicesErrorCode.DUPLICATE_REQUEST, "A request with this request_id is running.", request_id
                )
            )
            return
        task = asyncio.ensure_future(self._run_request(handler, frame))
        self.requests[request_id] = task

        def forget(done: asyncio.Task) -> None:
            if self.requests.get(request_id) is done:
                del self.requests[request_id]

        task.add_done_callback(forget)

    async def _run_request(self, handler: handlers.FrameHandler, frame: Any) -> None:
        try:
            await handler(self.session, frame)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise
        except ApplicationError as exc:
            await self.send_error(exc.code, exc.message, frame.request_id)
        except Exception:
            logger.exception("device socket: %s handler failed", frame.type)
            await self.send_error(
                DevicesErrorCode.INTERNAL_ERROR, "The request failed on the server.", frame.request_id
            )

    # --- tool calls -----------------------------------------------------------------------

    async def local_call(self, call: ToolCall, *, timeout: float) -> dict:  # noqa: ASYNC109
        """A tool call from this event loop: send, then await the future the result resolves."""
        if not self.accepting_calls:
            raise DeviceDisconnectedError()
        future = asyncio.get_running_loop().create_future()
        self.pending[call.id] = _PendingCall(deadline=time.time() + timeout, future=future)
        try:
            await self.send_frame(call)
            result: ToolResult = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise DeviceTimeoutError() from None
        finally:
            self.pending.pop(call.id, None)
        if result.error is not None:
            raise DeviceToolError(result.error)
        return result.payload()

    async def _tool_result(self, result: ToolResult) -> None:
        call = self.pending.pop(result.id, None)
        if call is None:
            return  # late (the caller gave up) or unknown: ignored
        if call.future is not None:
            if not call.future.done():
                call.future.set_result(result)
            return
        if call.deadline < time.time():
            return
        reply = {"type": services.MSG_RESULT, "result": result.payload(), "error": result.error}
        try:
            await self.channel_layer.send(call.reply_channel, reply)
        except ChannelFull:
            logger.warning("device socket: reply channel full for call %s", result.id)

    # --- channel layer messages (from other processes) ------------------------------------

    def _addressed_to_me(self, message: dict) -> bool:
        return message.get("user_id") == self.user_id and message.get("device_id") == self.device_id

    async def devices_tool_call(self, message: dict) -> None:
        call = message["call"]
        if not self._addressed_to_me(message) or not self.accepting_calls:
            await self._answer(message["reply_channel"], _failure(DeviceDisconnectedError()))
            return
        if message["deadline"] <= time.time():
            return
        self.pending[call["id"]] = _PendingCall(deadline=message["deadline"], reply_channel=message["reply_channel"])
        try:
            await self.send_frame(ToolCall(**call))
        except DeviceDisconnectedError:
            self.pending.pop(call["id"], None)
            await self._answer(message["reply_channel"], _failure(DeviceDisconnectedError()))

    async def devices_tool_cancel(self, message: dict) -> None:
        self.pending.pop(message["call_id"], None)

    async def devices_send_frame(self, message: dict) -> None:
        if self._addressed_to_me(message):
            with contextlib.suppress(DeviceDisconnectedError):
                await self.send_frame(message["frame"])

    async def devices_replaced(self, message: dict) -> None:
        if self._addressed_to_me(message):
            await self.close_with(DeviceCloseCode.REPLACED)

    async def devices_close(self, message: dict) -> None:
        if message.get("user_id") == self.user_id:
            await self.close_with(message["code"])

    async def _answer(self, reply_channel: str, message: dict) -> None:
        with contextlib.suppress(ChannelFull):
            await self.channel_layer.send(reply_channel, message)


def _failure(error: ApplicationError) -> dict:
    return {"type": services.MSG_FAILED, "code": error.code, "message": error.message}
