"""A device socket's hello and presence: from ``device_hello`` to online, and back to offline.

``hello_received`` turns a socket that said hello into an online device: the database row
(``presence_connect`` for a known device, ``presence.device_connect`` for a new one), the
negotiated capabilities (``device_welcome``), the presence index, the notice to the socket it
replaced, then the heartbeat, the calls reopeners and the connect handlers. ``presence_leave``
undoes it at teardown. ``reopened_answers_wait`` holds a frame that may answer a call the hello is
still re-opening until the reopeners end.
``presence_entry`` and ``presence_verdict`` are the socket's side of the process-wide presence
flush (``presence_flusher``).

The consumer keeps the lifecycle (its timers, ``close_with``, ``_teardown``) and calls these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from channels.exceptions import ChannelFull
from django.conf import settings

from . import capabilities, connections, drain, handlers, heartbeat, presence_flusher, services
from .close_codes import DeviceCloseCode
from .errors import DeviceHelloRefusedError, DeviceLimitError
from .frames import DeviceHello, DeviceWelcome, parse_json
from .hot_settings import hot_setting
from .node import loop_node
from .presence import PresenceEntry, SessionState, device_connect, device_disconnect
from .presence_connect import REFUSED_VALUES, device_reconnect
from .presence_index import presence_announce, presence_withdraw
from .session import Session
from .socket_db import socket_db

if TYPE_CHECKING:
    from .device_socket import DeviceSocket

logger = logging.getLogger(__name__)

_CLOSE_FOR_STATE = {
    SessionState.REVOKED: DeviceCloseCode.SESSION_REVOKED,
    SessionState.DEACTIVATED: DeviceCloseCode.USER_DEACTIVATED,
}


async def hello_received(consumer: DeviceSocket, hello: DeviceHello) -> None:
    """The socket's first valid frame: record the device, negotiate, announce it, start its tasks."""
    # The deadline is for receiving the hello; its own processing (database, Redis) may outlast it.
    consumer.hello_timer.cancel()
    if drain.draining():  # connected just before the drain began: it was not among those moved
        await consumer.close_with(DeviceCloseCode.SERVICE_RESTART, reason=drain.reconnect_reason())
        return
    consumer.device_id = hello.device_id
    consumer.agent_ids = list(hello.agent_ids)
    node = await loop_node()
    consumer.node_name = node.name
    # A known device (a reconnect) takes its row over with the other hellos arriving now; a new one
    # is made on its own, under its user's cap.
    try:
        replaced = await device_reconnect(
            user_id=consumer.user_id,
            device_id=hello.device_id,
            channel_name=consumer.channel_name,
            agent_ids=consumer.agent_ids,
            name=hello.name,
            platform=hello.platform,
        )
        if replaced is None:
            try:
                replaced = await socket_db(device_connect)(
                    user=consumer.user,
                    device_id=hello.device_id,
                    channel_name=consumer.channel_name,
                    agent_ids=consumer.agent_ids,
                    name=hello.name,
                    platform=hello.platform,
                )
            except REFUSED_VALUES as exc:
                raise DeviceHelloRefusedError() from exc
    except DeviceLimitError as exc:
        await consumer.send_error(exc.code, exc.message)
        await consumer.close_with(DeviceCloseCode.DEVICE_LIMIT)
        return
    except DeviceHelloRefusedError as exc:
        # The hello's values are the client's: not a failure of the server, and not logged with them.
        logger.warning("device socket: the database refused the values of a hello of user %s", consumer.user_id)
        await consumer.send_error(exc.code, exc.message)
        await consumer.close_with(DeviceCloseCode.BAD_HELLO)
        return
    if hello.capabilities is not None:
        # Before anything else on the socket: no frame can reach it before it is registered below.
        negotiated = capabilities.capabilities_negotiate(hello.capabilities)
        consumer.capabilities = capabilities.capability_set(negotiated)
        await consumer.send_frame(DeviceWelcome(protocol=capabilities.PROTOCOL_VERSION, capabilities=negotiated))
    consumer.hello_done = True
    connections.register(consumer)
    # Announced once the socket takes calls, so a call the index routes to this node finds it
    # ready. A call made in between finds the database row and goes to this socket's channel,
    # where it waits behind this hello (a consumer handles one message at a time).
    await presence_announce(
        user_id=consumer.user_id, device_id=consumer.device_id, channel=consumer.channel_name, node=node.name
    )
    if consumer.capabilities:
        await capabilities.capabilities_announce(
            user_id=consumer.user_id,
            device_id=consumer.device_id,
            channel=consumer.channel_name,
            capabilities=sorted(consumer.capabilities),
        )
    if replaced:
        await _replaced_notify(consumer, replaced)
    presence_flusher.ensure_running()
    heartbeat.ensure_running()
    reopeners = handlers.calls_reopeners()
    if reopeners:
        # Marked before the next frame is read: the device may send answers right behind its hello.
        consumer.reopening = consumer.spawn(_calls_reopen(Session(consumer), weakref.ref(consumer), reopeners))
    for handler in handlers.connect_handlers():
        consumer.spawn(_run_connect_handler(Session(consumer), handler))


async def _calls_reopen(
    session: Session, socket: weakref.ref[DeviceSocket], reopeners: tuple[handlers.ConnectHandler, ...]
) -> None:
    # The socket is held weakly, as by the session: a reopener still running after the disconnect,
    # deaf to its cancellation, does not keep the socket in memory.
    try:
        outcomes = await asyncio.gather(*(reopener(session) for reopener in reopeners), return_exceptions=True)
        for reopener, outcome in zip(reopeners, outcomes, strict=True):
            if isinstance(outcome, Exception):
                logger.error("device socket: calls reopener %r failed", reopener, exc_info=outcome)
    finally:
        consumer = socket()
        if consumer is not None:
            consumer.reopening = None


async def reopened_answers_wait(consumer: DeviceSocket, text_data: str) -> None:
    """While the hello re-opens the calls of an earlier socket (``consumer.reopening``), a frame that
    may answer one of them waits for that to end, so it is judged an answer (free) or not (charged,
    as any frame) against what the hello found: a device that reconnects and goes on sending a run's
    pieces loses none to its frame budget.

    The socket stops reading meanwhile, so only the frame in hand is held here: the device's next
    frames wait in the server's bounded queue and TCP, and a device that sends many stalls only
    itself. Bounded by DEVICE_TOOL_CALL_TIMEOUT (half the heartbeat's ``read_pause_max``): then the
    frame goes on as if it had not waited."""
    reopening = consumer.reopening
    if reopening is None or len(text_data) > hot_setting("DEVICE_MAX_FRAME_BYTES"):
        return
    try:
        raw = parse_json(text_data)
    except ValueError:
        return  # intake rejects it
    if not isinstance(raw, dict) or not consumer.may_answer_a_reopened_call(raw):
        return
    with heartbeat.reading_paused(consumer):
        await asyncio.wait((reopening,), timeout=settings.DEVICE_TOOL_CALL_TIMEOUT)


async def _replaced_notify(consumer: DeviceSocket, replaced: str) -> None:
    """Tell the socket that held the device before (on channel ``replaced``) to close with 4409."""
    with contextlib.suppress(ChannelFull):
        await consumer.channel_layer.send(
            replaced, {"type": services.MSG_REPLACED, "user_id": consumer.user_id, "device_id": consumer.device_id}
        )


async def _run_connect_handler(session: Session, handler: handlers.ConnectHandler) -> None:
    # Only the session (a weak reference) names the socket: a handler still running after the
    # disconnect, deaf to its cancellation, does not keep the socket in memory.
    try:
        await handler(session)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("device socket: connect handler %r failed", handler)


async def presence_leave(consumer: DeviceSocket) -> None:
    """At teardown: withdraw what the hello announced and record the disconnect (never raises)."""
    if consumer.node_name:
        where = {"user_id": consumer.user_id, "device_id": consumer.device_id, "channel": consumer.channel_name}
        withdrawals = [presence_withdraw(**where)]
        if consumer.capabilities:
            withdrawals.append(capabilities.capabilities_withdraw(**where))
        try:
            # Together, so both entries leave in the same batched script call.
            await asyncio.gather(*withdrawals)
        except Exception:
            logger.warning("device socket: could not withdraw presence", exc_info=True)
    if not consumer.hello_done:
        return
    connections.unregister(consumer)
    try:
        await socket_db(device_disconnect)(
            user_id=consumer.user_id,
            device_id=consumer.device_id,
            channel_name=consumer.channel_name,
            last_seen_at=datetime.fromtimestamp(consumer.last_seen, tz=UTC),
        )
    except Exception:
        logger.exception("device socket: could not record the disconnect")


def presence_entry(consumer: DeviceSocket) -> PresenceEntry:
    """What the process-wide presence flush (presence_flusher) needs from this socket."""
    return PresenceEntry(
        consumer.user_id,
        consumer.device_id,
        consumer.channel_name,
        consumer.last_seen,
        consumer.scope.get("device_token_family"),
    )


def presence_verdict(consumer: DeviceSocket, *, holds: bool, state: SessionState) -> None:
    """Outcome of a presence flush: close if the session ended or another socket took the device."""
    consumer.pending.sweep_expired()
    if state is not SessionState.ACTIVE:
        consumer.spawn_close(_CLOSE_FOR_STATE[state])
    elif not holds:
        consumer.spawn_close(DeviceCloseCode.REPLACED)
