"""The device socket (``/api/v1/ws/device``): a thin door from frames to the modules that act on them.

Authentication is done by ``middleware.DeviceSocketAuthMiddleware``; the frame budget by
``rate_limit``; tool calls in flight by ``pending_calls``; presence by ``presence`` (database) and
``presence_index`` (Redis); request streams (numbered, resumable frames) by ``streams``; request
handlers are what other apps register in ``handlers``. ``receive`` spends the budget, decodes the
frame and routes it through ``_ROUTES`` (or the registry). Requests run as tasks of their own
that outlive the socket; any failure of the socket's own code ends in a clean close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.conf import settings
from pydantic import BaseModel, ValidationError

from apps.core.errors import ApplicationError, CoreErrorCode

from . import connections, handlers, presence_flusher, services, streams
from .close_codes import DeviceCloseCode
from .error_codes import DevicesErrorCode
from .errors import DeviceBusyError, DeviceDisconnectedError, DeviceLimitError, DeviceTimeoutError, DeviceToolError
from .frames import DeviceHello, ToolCall, ToolResult, is_incoming_type, outgoing_json, parse_incoming, parse_json
from .middleware import authenticate
from .node import MSG_FAILED, MSG_RESULT, loop_node, node_publish, register_message_handler
from .pending_calls import PendingCalls
from .presence import SessionState, device_connect, device_disconnect
from .presence_index import presence_announce, presence_withdraw
from .rate_limit import FrameBudget, Verdict, frame_cost

logger = logging.getLogger(__name__)

_CLOSE_FOR_STATE = {
    SessionState.REVOKED: DeviceCloseCode.SESSION_REVOKED,
    SessionState.DEACTIVATED: DeviceCloseCode.USER_DEACTIVATED,
}

# Frame types the socket itself handles → method name; any other type goes to the handler registry.
_ROUTES = {
    "device_hello": "_on_hello_again",
    "ping": "_on_ping",
    "pong": "_on_pong",
    "tool_result": "_on_tool_result",
    "cancel": "_on_cancel",
    "resume": "_on_resume",
    "auth": "_on_auth",
}


# Tasks that must outlive the socket that started them (referenced until done).
_detached: set[asyncio.Future] = set()


def _keep(task: asyncio.Future) -> None:
    _detached.add(task)
    task.add_done_callback(_detached.discard)


class RequestSession:
    """What a request handler gets (see ``handlers.DeviceSession``): the owner, the device, and a
    ``send`` that numbers and logs the request's frames, so they survive a dropped socket."""

    def __init__(self, consumer: DeviceConsumer, stream: streams.RequestStream) -> None:
        self._consumer = consumer
        self.stream = stream
        self.user = consumer.user
        self.user_id = consumer.user_id
        self.device_id = consumer.device_id
        self.agent_ids = consumer.agent_ids

    async def send(self, frame: dict[str, Any] | BaseModel) -> None:
        data = frame.model_dump(exclude_none=True) if isinstance(frame, BaseModel) else frame
        if data.get("request_id") == self.stream.request_id:
            self.stream.emit(data)
            if data.get("type") == "stream_end":
                await self.stream.drain()
            return
        await self._consumer.send_frame(data)

    async def call(self, **kwargs: Any) -> dict:
        """``call_device`` on this device (its current socket, wherever it is)."""
        return await services.call_device(user_id=self.user_id, device_id=self.device_id, **kwargs)


async def _run_request(handler: handlers.FrameHandler, session: RequestSession, frame: Any) -> None:
    """Run one request to its end; it is not cancelled by a dropped socket, only by ``cancel``."""
    stream = session.stream
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
                "message": "The request failed on the server.",
            }
        )
    finally:
        stream.finish()


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
        except Exception:
            # Never leave a half-dead socket behind (presence would keep it "online"): close and clean up.
            logger.exception("device socket: %s failed; closing the socket", message["type"])
            await self.close_with(DeviceCloseCode.SERVER_ERROR)
            await self._teardown()

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
        self.background: set[asyncio.Future] = set()
        self.timers: list[asyncio.TimerHandle] = []
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.pong_received = asyncio.Event()
        self.budget = FrameBudget(
            rate=settings.DEVICE_FRAME_RATE,
            burst=settings.DEVICE_FRAME_BURST,
            close_after=settings.DEVICE_FLOOD_CLOSE_AFTER,
        )
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
        return self.hello_done and not self.closing

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
        """Run ``coro`` beside the receive loop; cancelled on teardown; a failure closes the socket."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Future) -> None:
        self.background.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        logger.error("device socket: a background task failed; closing the socket", exc_info=task.exception())
        if not self.torn_down:
            _keep(asyncio.ensure_future(self._fail_hard()))

    async def _fail_hard(self) -> None:
        await self.close_with(DeviceCloseCode.SERVER_ERROR)
        await self._teardown()

    def _spawn_close(self, code: int) -> None:
        if not self.closing:
            self._spawn(self.close_with(code))

    def _hello_timeout(self) -> None:
        if not self.hello_done:
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
        for task in list(self.background):
            if task is not current:
                task.cancel()
        self._fail_pending()
        streams.detach_everywhere(self)  # requests keep running; a resume picks them up
        if self.node_name:
            try:
                await presence_withdraw(user_id=self.user_id, device_id=self.device_id, channel=self.channel_name)
            except Exception:
                logger.warning("device socket: could not withdraw presence", exc_info=True)
        if not self.hello_done:
            return
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
        for waiter in self.pending.fail_all(DeviceDisconnectedError()):
            # Not a socket task: the answer must outlive the teardown.
            _keep(asyncio.ensure_future(_answer(waiter.reply_to, _failure(DeviceDisconnectedError(), waiter.call_id))))

    # --- sending ------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Send an already serialized frame; DeviceDisconnectedError if the socket is gone."""
        if self.closing:
            raise DeviceDisconnectedError()
        try:
            await self.send(text_data=text)
        except OSError as exc:  # the server's "client disconnected" (uvicorn) before our disconnect event
            self.closing = True
            raise DeviceDisconnectedError() from exc

    async def send_frame(self, frame: dict[str, Any] | BaseModel) -> None:
        await self.send_text(outgoing_json(frame))

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
        size = len(text_data) if text_data is not None else len(bytes_data or b"")
        raw = self._within_budget(text_data, size)
        if raw is False:
            return
        if text_data is None:
            await self._reject(DevicesErrorCode.MALFORMED_FRAME, "Frames are JSON text, not binary.")
            return
        limit = settings.DEVICE_MAX_FRAME_BYTES
        if size > limit or (size * 4 > limit and len(text_data.encode()) > limit):
            await self._reject(DevicesErrorCode.FRAME_TOO_LARGE, f"Frames are limited to {limit} bytes.")
            return
        if raw is None:
            try:
                raw = parse_json(text_data)
            except ValueError:
                await self._reject(DevicesErrorCode.MALFORMED_FRAME, "The frame is not valid JSON.")
                return
        frame_type = raw.get("type") if isinstance(raw, dict) else None
        if not is_incoming_type(frame_type):
            await self._reject(DevicesErrorCode.UNKNOWN_FRAME_TYPE, f"Unknown frame type {frame_type!r}.")
            return
        try:
            frame = parse_incoming(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"][1:]) or frame_type
            request_id = raw.get("request_id")
            await self._reject(
                DevicesErrorCode.INVALID_FRAME,
                f"Invalid {frame_type} frame: {where}: {error['msg']}",
                request_id=request_id if isinstance(request_id, str) else None,
            )
            return
        if not self.hello_done:
            if isinstance(frame, DeviceHello):
                await self._hello(frame)
            else:
                await self.send_error(DevicesErrorCode.HELLO_REQUIRED, "The first frame must be device_hello.")
                await self.close_with(DeviceCloseCode.BAD_HELLO)
            return
        route = _ROUTES.get(frame_type)
        if route is not None:
            await getattr(self, route)(frame)
        else:
            await self._start_request(frame)

    def _within_budget(self, text_data: str | None, size: int) -> Any:
        """Spend the frame's cost before any parsing. Returns False to drop it, the parsed frame
        when only an answer to one of our own calls got past an empty bucket, else None."""
        cost = frame_cost(size)
        if self.budget.available(cost):
            self.budget.take(cost)
            return None
        # Answers to the server's own calls are bounded by the server: never dropped. Only parsed
        # when such calls are pending and the frame is small enough to be one.
        if self.pending and text_data is not None and size <= settings.DEVICE_MAX_FRAME_BYTES:
            with contextlib.suppress(ValueError):
                raw = parse_json(text_data)
                if isinstance(raw, dict) and raw.get("type") == "tool_result" and raw.get("id") in self.pending:
                    return raw
        verdict = self.budget.take(cost)
        if verdict is Verdict.DROP_AND_WARN:
            self._spawn(
                self.send_error(DevicesErrorCode.RATE_LIMITED, "Too many frames; some were dropped. Slow down.")
            )
        elif verdict is Verdict.CLOSE:
            self._spawn_close(DeviceCloseCode.RATE_LIMITED)
        return False

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
        self.pong_received.set()

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
        node = await loop_node()
        self.node_name = node.name
        try:
            _device, replaced = await database_sync_to_async(device_connect)(
                user=self.user,
                device_id=hello.device_id,
                channel_name=self.channel_name,
                agent_ids=self.agent_ids,
                name=hello.name,
                platform=hello.platform,
            )
        except DeviceLimitError as exc:
            await self.send_error(exc.code, exc.message)
            await self.close_with(DeviceCloseCode.DEVICE_LIMIT)
            return
        self.hello_done = True
        connections.register(self)
        # Announced once the socket takes calls, so a call the index routes to this node finds it
        # ready. A call made in between finds the database row and goes to this socket's channel,
        # where it waits behind this hello (a consumer handles one message at a time).
        await presence_announce(
            user_id=self.user_id, device_id=self.device_id, channel=self.channel_name, node=node.name
        )
        if replaced:
            with contextlib.suppress(ChannelFull):
                await self.channel_layer.send(
                    replaced, {"type": services.MSG_REPLACED, "user_id": self.user_id, "device_id": self.device_id}
                )
        presence_flusher.ensure_running()
        self._spawn(self._heartbeat())
        for handler in handlers.connect_handlers():
            self._spawn(self._run_connect_handler(handler))

    async def _run_connect_handler(self, handler: handlers.ConnectHandler) -> None:
        try:
            await handler(self._session())
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("device socket: connect handler %r failed", handler)

    def _session(self) -> _SocketSession:
        return _SocketSession(self)

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
        self.pending.sweep_expired()
        if state is not SessionState.ACTIVE:
            self._spawn_close(_CLOSE_FOR_STATE[state])
        elif not holds:
            self._spawn_close(DeviceCloseCode.REPLACED)

    # --- requests -----------------------------------------------------------------------

    async def _start_request(self, frame: Any) -> None:
        if getattr(frame, "request_id", None) is None:
            frame.request_id = uuid.uuid4().hex
        request_id = frame.request_id
        handler = handlers.get_frame_handler(frame.type)
        if handler is None:
            await self.send_error(
                DevicesErrorCode.NOT_IMPLEMENTED, f"{frame.type} is not available on this server.", request_id
            )
            return
        if streams.stream_get(user_id=self.user_id, request_id=request_id) is not None:
            await self.send_error(
                DevicesErrorCode.DUPLICATE_REQUEST, "A request with this request_id is running.", request_id
            )
            return
        stream = await streams.stream_open(user_id=self.user_id, request_id=request_id)
        stream.attach(self, 0)
        stream.task = asyncio.ensure_future(_run_request(handler, RequestSession(self, stream), frame))

    # --- tool calls -----------------------------------------------------------------------

    async def local_call(self, call: ToolCall, *, timeout: float) -> dict:  # noqa: ASYNC109
        """A tool call from this event loop: send, then await the future the result resolves."""
        if not self.accepting_calls:
            raise DeviceDisconnectedError()
        if len(self.pending) >= settings.DEVICE_MAX_PENDING_CALLS:
            raise DeviceBusyError()
        future = self.pending.add_local(call.id, deadline=time.time() + timeout)
        try:
            await self.send_frame(call)
            result: ToolResult = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise DeviceTimeoutError() from None
        finally:
            self.pending.forget(call.id)
        if result.error is not None:
            raise DeviceToolError(result.error)
        return result.payload()

    async def _on_tool_result(self, result: ToolResult) -> None:
        reply_to = self.pending.resolve(result.id, result)
        if reply_to is not None:
            await _answer(
                reply_to, {"type": MSG_RESULT, "call_id": result.id, "result": result.payload(), "error": result.error}
            )

    async def remote_call(self, message: dict) -> None:
        """A tool call from another loop or process (services._remote_call); answered on its node."""
        call, reply_to = message["call"], message["reply_to"]
        if not self._addressed_to_me(message) or not self.accepting_calls:
            await _answer(reply_to, _failure(DeviceDisconnectedError(), call["id"]))
            return
        if message["deadline"] <= time.time():
            return  # the caller has given up already
        if len(self.pending) >= settings.DEVICE_MAX_PENDING_CALLS:
            await _answer(reply_to, _failure(DeviceBusyError(), call["id"]))
            return
        self.pending.add_remote(call["id"], deadline=message["deadline"], reply_to=reply_to)
        try:
            await self.send_frame(ToolCall(**call))
        except DeviceDisconnectedError:
            self.pending.forget(call["id"])
            await _answer(reply_to, _failure(DeviceDisconnectedError(), call["id"]))

    # --- channel layer messages (from other processes) ------------------------------------

    def _addressed_to_me(self, message: dict) -> bool:
        return message.get("user_id") == self.user_id and message.get("device_id") == self.device_id

    async def devices_tool_call(self, message: dict) -> None:
        # Only callers that found the device in the database (no node known) send calls this way.
        await self.remote_call(message)

    async def devices_tool_cancel(self, message: dict) -> None:
        self.pending.forget(message["call_id"])

    async def devices_send_frame(self, message: dict) -> None:
        if self._addressed_to_me(message):
            with contextlib.suppress(DeviceDisconnectedError):
                await self.send_frame(message["frame"])

    async def devices_stream_frame(self, message: dict) -> None:
        """A frame of a request another process runs, for a socket that resumed it here."""
        if message.get("user_id") == self.user_id:
            with contextlib.suppress(DeviceDisconnectedError):
                await self.send_text(message["text"])

    async def devices_replaced(self, message: dict) -> None:
        if self._addressed_to_me(message):
            await self.close_with(DeviceCloseCode.REPLACED)

    async def devices_close(self, message: dict) -> None:
        if message.get("user_id") == self.user_id:
            await self.close_with(message["code"])


class _SocketSession:
    """The session a connect handler gets: frames go straight to this socket."""

    def __init__(self, consumer: DeviceConsumer) -> None:
        self._consumer = consumer
        self.user = consumer.user
        self.user_id = consumer.user_id
        self.device_id = consumer.device_id
        self.agent_ids = consumer.agent_ids

    async def send(self, frame: dict[str, Any] | BaseModel) -> None:
        await self._consumer.send_frame(frame)

    async def call(self, **kwargs: Any) -> dict:
        return await services.call_device(user_id=self.user_id, device_id=self.device_id, **kwargs)


def _failure(error: ApplicationError, call_id: str) -> dict:
    return {"type": MSG_FAILED, "call_id": call_id, "code": error.code, "message": error.message}


async def _answer(reply_to: str, message: dict) -> None:
    """Answer a remote caller on its node; a caller that is gone learns nothing (and needs nothing)."""
    try:
        await node_publish(reply_to, message)
    except Exception:
        logger.warning("device socket: could not answer call %s", message.get("call_id"), exc_info=True)


# Tool calls published to this loop's node (services._remote_call) go to the socket they name.


async def _on_node_tool_call(message: dict) -> None:
    consumer = connections.local_consumer(user_id=message.get("user_id", ""), device_id=message.get("device_id", ""))
    if consumer is None:
        await _answer(message["reply_to"], _failure(DeviceDisconnectedError(), message["call"]["id"]))
        return
    await consumer.remote_call(message)


async def _on_node_tool_cancel(message: dict) -> None:
    consumer = connections.local_consumer(user_id=message.get("user_id", ""), device_id=message.get("device_id", ""))
    if consumer is not None:
        consumer.pending.forget(message["call_id"])


register_message_handler(services.MSG_TOOL_CALL, _on_node_tool_call)
register_message_handler(services.MSG_TOOL_CANCEL, _on_node_tool_cancel)
