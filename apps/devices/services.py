"""Talking to a user's device from anywhere: ``call_device``, ``send_to_device``,
``user_frame_broadcast``, ``devices_online``, and forgetting one (``device_forget``: its row goes
and its socket is closed).

A call from the event loop that holds the socket goes straight to the consumer; any other
caller (another server process, a Celery worker, a REST view, another thread) finds the socket's
channel in the Redis presence index (no database read while it is online) and sends the call over
the holder process's node (Redis pub/sub, see node.py); while it waits for the answer it checks
the holder's liveness key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings
from django.db import transaction
from pydantic import ValidationError

from apps.core import metrics
from apps.core.errors import ApplicationError, CoreErrorCode

from . import connections
from .capabilities import capable_sockets
from .channel_layer import loop_layer
from .close_codes import DeviceCloseCode
from .error_codes import DevicesErrorCode
from .errors import (
    ERROR_BY_CODE,
    DeviceBusyError,
    DeviceDisconnectedError,
    DeviceOfflineError,
    DeviceTimeoutError,
    DeviceToolError,
)
from .frames import capability_required, parse_outgoing, tool_call_frame
from .hot_settings import hot_setting
from .models import Device
from .node import MSG_RESULT, Node, encode, loop_node, node_alive, node_publish
from .presence_index import DeviceLocation, Lookup, holder_forget, presence_locate, presence_publish_to_holder
from .selectors import device_get_online, device_list_online
from .signals import device_forgotten

# Messages between processes. Tool calls and their cancels go to the holder's node (node.py), or to
# the socket's channel when no node is known; the rest go to the socket's channel on the channel
# layer (consumer handlers devices_send_frame, devices_replaced, devices_close).
MSG_TOOL_CALL = "devices.tool_call"
MSG_TOOL_CANCEL = "devices.tool_cancel"
MSG_SEND_FRAME = "devices.send_frame"
MSG_REPLACED = "devices.replaced"
MSG_CLOSE = "devices.close"


def _build_call(**fields: Any) -> dict[str, Any]:
    try:
        return tool_call_frame(**fields)
    except ValidationError as exc:
        raise ApplicationError(CoreErrorCode.VALIDATION_ERROR, f"Invalid tool call: {exc.errors()[0]['msg']}") from exc


async def _locate(*, user_id: str, device_id: str | None) -> tuple[Any, DeviceLocation | None]:
    """The local consumer holding the device, else where it is held; DeviceOfflineError if nowhere.

    Reads the Redis presence index (one round trip), never the database.
    """
    if device_id is not None:
        consumer = connections.local_consumer(user_id=user_id, device_id=device_id)
        if consumer is not None and consumer.accepting_calls:
            return consumer, None
    lookup = await presence_locate(user_id=user_id, device_id=device_id)
    location = lookup.location or await _location_from_database(user_id=user_id, device_id=device_id, lookup=lookup)
    consumer = connections.local_consumer(user_id=user_id, device_id=location.device_id)
    if consumer is not None and consumer.channel_name == location.channel and consumer.accepting_calls:
        return consumer, None
    return None, location


async def _location_from_database(*, user_id: str, device_id: str | None, lookup: Lookup) -> DeviceLocation:
    """Where the database says the device is held, when the index knows no live holder.

    An index with no entry at all is confirmed in the database, so an entry lost to a Redis hiccup
    does not make an online device look offline (such a location has no node). An index whose
    only entry belongs to a dead process is believed: the database row would still look online
    until its lease runs out, and a call sent there would wait its whole timeout.
    """
    if lookup.stale:
        raise DeviceOfflineError()
    row = await database_sync_to_async(device_get_online)(user_id=user_id, device_id=device_id)
    if row is None:
        raise DeviceOfflineError()
    return DeviceLocation(row.device_id, row.channel_name, "")


async def call_device(
    *,
    user_id,
    action: str,
    table: str | None = None,
    data: dict | None = None,
    filters: dict | None = None,
    vector: list[float] | None = None,
    limit: int | None = None,
    device_id: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109  (the contract names it; it bounds the wait for the result)
) -> dict:
    """Run one tool call on the user's device and return the ``tool_result`` payload.

    ``device_id=None`` picks the user's most recently connected online device. Raises
    DeviceOfflineError, DeviceTimeoutError, DeviceDisconnectedError (fast, on a disconnect during
    the call, or within seconds when the process holding the device died), DeviceToolError (the
    client's ``error``) or DeviceBusyError.
    """
    user_id = str(user_id)
    timeout = hot_setting("DEVICE_TOOL_CALL_TIMEOUT") if timeout is None else timeout
    call = _build_call(action=action, table=table, data=data, filters=filters, vector=vector, limit=limit)
    if device_id is not None:
        consumer = connections.local_consumer(user_id=user_id, device_id=device_id)
        location = None  # found (and the call published) in one round trip by _remote_call
    else:
        consumer, location = await _locate(user_id=user_id, device_id=None)
        device_id = location.device_id if location is not None else consumer.device_id
    # Timed inline, not with metrics.tool_call_timer: its generator cost as much as the observation.
    started = time.perf_counter()
    route = "own_process"
    try:
        if consumer is not None and consumer.accepting_calls:
            result = await consumer.local_call(call, timeout=timeout)
        else:
            route = "other_process"
            result = await _remote_call(
                user_id=user_id, device_id=device_id, location=location, call=call, timeout=timeout
            )
    except BaseException as exc:
        metrics.tool_call_observed(route=route, started=started, outcome=type(exc).__name__)
        raise
    metrics.tool_call_observed(route=route, started=started)
    return result


async def _remote_call(
    *,
    user_id: str,
    device_id: str,
    location: DeviceLocation | None,
    call: dict[str, Any],
    timeout: float,  # noqa: ASYNC109
) -> dict:
    """Send the call to the device's holder and wait for the answer on this loop's node, checking
    the holder's liveness key meanwhile (a dead process answers nothing)."""
    node = await loop_node()
    answer_future = node.expect(call["id"])
    deadline = time.monotonic() + timeout
    message = {
        "type": MSG_TOOL_CALL,
        "reply_to": node.name,
        "user_id": user_id,
        "device_id": device_id,
        "deadline": time.time() + timeout,
        "call": call,
    }
    try:
        location, remembered = await _send_call(
            user_id=user_id, device_id=device_id, location=location, message=message
        )
        answer = await _answer(
            node=node, answer_future=answer_future, location=location, message=message, deadline=deadline
        )
        if remembered and answer.get("not_held"):
            # The node this process remembered no longer holds the device, and the call reached no
            # socket there: ask the index where it is now and send it once more.
            holder_forget(user_id=user_id, device_id=device_id)
            answer_future = node.expect(call["id"])
            location, _ = await _send_call(
                user_id=user_id, device_id=device_id, location=None, message=message, remembered=False
            )
            answer = await _answer(
                node=node, answer_future=answer_future, location=location, message=message, deadline=deadline
            )
    finally:
        node.forget(call["id"])
    if answer["type"] == MSG_RESULT:
        if answer.get("error") is not None:
            raise DeviceToolError(answer["error"])
        return answer["result"]
    raise ERROR_BY_CODE.get(answer.get("code", ""), DeviceOfflineError)(answer.get("message"))


async def _answer(
    *, node: Node, answer_future: asyncio.Future, location: DeviceLocation, message: dict, deadline: float
) -> dict:
    """The node message answering the call, checking the holder's liveness key meanwhile."""
    call_id = message["call"]["id"]
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            await _cancel_remote(location=location, message=message)
            raise DeviceTimeoutError()
        # A timer, not asyncio.wait (a waiter future and callbacks on every call): when it fires
        # first it hands the answer's waiter over to a fresh future, so nothing can fall between.
        timer = loop.call_later(
            min(remaining, settings.DEVICE_CALL_LIVENESS_CHECK), _no_answer_yet, node, call_id, answer_future
        )
        try:
            answer = await answer_future
        finally:
            timer.cancel()
        if not isinstance(answer, asyncio.Future):
            return answer
        answer_future = answer
        # The process holding the socket may have died without a word: its liveness key says so.
        if location.node and not await node_alive(location.node):
            raise DeviceDisconnectedError()


def _no_answer_yet(node: Node, call_id: str, waiting: asyncio.Future) -> None:
    """Wake a caller still waiting for call ``call_id``'s answer: the answer will resolve a fresh
    future, which ``waiting`` resolves to."""
    if not waiting.done():
        waiting.set_result(node.expect(call_id))


async def _send_call(
    *, user_id: str, device_id: str, location: DeviceLocation | None, message: dict, remembered: bool = True
) -> tuple[DeviceLocation, bool]:
    """Deliver a tool call to the device's holder; returns where it went, and whether that was the
    node this process remembered (``remembered=False``: ask the index).

    Without a known location, the node remembered, else the presence index finds the holder's node
    and publishes the call to it in one round trip. An index miss is confirmed in the database (so
    an entry lost to a Redis hiccup does not make an online device look offline); such a location
    has no node, and the call goes over the channel layer to the socket's own channel.
    """
    if location is None:
        lookup = await presence_publish_to_holder(
            user_id=user_id, device_id=device_id, payload=encode(message), remembered=remembered
        )
        if lookup.location is not None:
            if not lookup.heard:
                raise DeviceDisconnectedError()  # its node stopped listening: the holder is gone
            return lookup.location, lookup.remembered
        location = await _location_from_database(user_id=user_id, device_id=device_id, lookup=lookup)
    try:
        heard = await _to_holder(location, message)
    except ChannelFull as exc:
        raise DeviceBusyError() from exc
    if not heard:
        raise DeviceDisconnectedError()  # its node stopped listening: the holder is gone
    return location, False


async def _to_holder(location: DeviceLocation, message: dict) -> bool:
    """Send a call message where the device is held: its node, or (no node known) the socket's own
    channel. False when a node heard nothing."""
    if location.node:
        return bool(await node_publish(location.node, message))
    await loop_layer().send(location.channel, message)
    return True


async def _cancel_remote(*, location: DeviceLocation, message: dict) -> None:
    """Tell the holder to stop waiting for a call its caller gave up on (best effort)."""
    cancel = {
        "type": MSG_TOOL_CANCEL,
        "user_id": message["user_id"],
        "device_id": message["device_id"],
        "call_id": message["call"]["id"],
    }
    with contextlib.suppress(Exception):
        await _to_holder(location, cancel)


async def send_to_device(*, user_id, frame: dict, device_id: str | None = None) -> str:
    """Send a server-initiated frame (e.g. ``agent_run``) to the device; returns the device_id used."""
    user_id = str(user_id)
    parse_outgoing(frame)  # fail in the caller, not on the socket
    consumer, location = await _locate(user_id=user_id, device_id=device_id)
    if consumer is not None:
        await consumer.send_frame(frame)
        return consumer.device_id
    assert location is not None
    try:
        await loop_layer().send(
            location.channel,
            {"type": MSG_SEND_FRAME, "user_id": user_id, "device_id": location.device_id, "frame": frame},
        )
    except ChannelFull as exc:
        raise DeviceBusyError() from exc
    return location.device_id


async def user_frame_broadcast(*, user_id, frame: dict[str, Any], capability: str) -> int:
    """Send ``frame`` to every socket of the user that negotiated ``capability``, in whatever
    process holds it; returns how many sockets it was sent to (best effort: a socket that is busy
    or just went away misses it). A seed client never gets it.
    """
    user_id = str(user_id)
    model = parse_outgoing(frame)  # fail in the caller, not on the socket
    frame_type: str = model.type  # type: ignore[attr-defined]
    needed = capability_required(frame_type)
    if needed is not None and needed != capability:
        raise ValueError(f"{frame_type} frames need the {needed!r} capability, not {capability!r}")
    data = model.model_dump(exclude_none=True)
    sent = 0
    for target in await capable_sockets(user_id=user_id, capability=capability):
        consumer = connections.local_consumer(user_id=user_id, device_id=target.device_id)
        try:
            if consumer is not None and consumer.channel_name == target.channel:
                await consumer.send_frame(data)
            else:
                await loop_layer().send(
                    target.channel,
                    {"type": MSG_SEND_FRAME, "user_id": user_id, "device_id": target.device_id, "frame": data},
                )
        except (ChannelFull, DeviceDisconnectedError):
            continue
        sent += 1
    return sent


async def devices_online(*, user_id) -> list[Device]:
    """The user's devices held by a live socket, most recently seen first."""
    return await database_sync_to_async(device_list_online)(user_id=str(user_id))


async def devices_close_for_user(*, user_id, code: int, reason: str = "") -> int:
    """Close every live socket of the user (e.g. on deactivation); returns how many were told."""
    devices = await devices_online(user_id=user_id)
    layer = loop_layer()
    for device in devices:
        with contextlib.suppress(ChannelFull):
            await layer.send(
                device.channel_name,
                {"type": MSG_CLOSE, "user_id": str(user_id), "device_id": device.device_id, "code": code},
            )
    return len(devices)


async def device_socket_close(*, user_id, device_id: str, channel_name: str, code: int) -> None:
    """Tell the socket on ``channel_name`` (in whichever process holds it) to close with ``code``."""
    with contextlib.suppress(ChannelFull):
        await loop_layer().send(
            channel_name, {"type": MSG_CLOSE, "user_id": str(user_id), "device_id": device_id, "code": code}
        )


def device_forget(*, user_id, device_id: str) -> None:
    """Remove the user's device: its row goes, higher apps release what they bound to it
    (``device_forgotten``, same transaction), and its live socket is closed after the commit."""
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(user_id=user_id, device_id=device_id).first()
        if device is None:
            raise ApplicationError(
                DevicesErrorCode.DEVICE_NOT_FOUND, f"No device {device_id!r} on this account.", status=404
            )
        channel_name = device.channel_name
        device.delete()
        device_forgotten.send(sender=Device, user_id=user_id, device_id=device_id)
        if channel_name:
            transaction.on_commit(
                lambda: async_to_sync(device_socket_close)(
                    user_id=user_id,
                    device_id=device_id,
                    channel_name=channel_name,
                    code=DeviceCloseCode.DEVICE_FORGOTTEN,
                )
            )
