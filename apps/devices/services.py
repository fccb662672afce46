"""Talking to a user's device from anywhere: ``call_device``, ``send_to_device``, ``devices_online``.

A call from the event loop that holds the socket goes straight to the consumer; any other
caller (another server process, a Celery worker, a REST view, another thread) sends it over the
channel layer to the channel named in the ``Device`` row and waits on a fresh reply channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import weakref
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer, channel_layers
from django.conf import settings
from pydantic import ValidationError

from apps.core import metrics
from apps.core.errors import ApplicationError, CoreErrorCode

from . import connections
from .errors import ERROR_BY_CODE, DeviceBusyError, DeviceOfflineError, DeviceTimeoutError, DeviceToolError
from .frames import ToolCall, parse_outgoing
from .models import Device
from .selectors import device_get_online, device_list_online

# Message types on the channel layer (consumer handlers: devices_tool_call, devices_send_frame...).
MSG_TOOL_CALL = "devices.tool_call"
MSG_TOOL_CANCEL = "devices.tool_cancel"
MSG_SEND_FRAME = "devices.send_frame"
MSG_REPLACED = "devices.replaced"
MSG_CLOSE = "devices.close"
MSG_RESULT = "devices.tool_result"
MSG_FAILED = "devices.call_failed"

_layers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BaseChannelLayer] = weakref.WeakKeyDictionary()


def loop_layer() -> BaseChannelLayer:
    """The channel layer instance of the running event loop (consumers and callers alike).

    channels-redis refuses two event loops receiving on one layer instance, and one process may
    run several loops (a server thread beside a caller, async_to_sync in a worker); so each loop
    gets its own instance.
    """
    loop = asyncio.get_running_loop()
    layer = _layers.get(loop)
    if layer is None:
        layer = _layers[loop] = channel_layers.make_backend("default")
    return layer


def _build_call(**fields: Any) -> ToolCall:
    try:
        return ToolCall(id=uuid.uuid4().hex, **{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise ApplicationError(CoreErrorCode.VALIDATION_ERROR, f"Invalid tool call: {exc.errors()[0]['msg']}") from exc


async def _locate(*, user_id: str, device_id: str | None) -> tuple[Any, Device | None]:
    """The local consumer holding the device, else its ``Device`` row; DeviceOfflineError if neither."""
    if device_id is not None:
        consumer = connections.local_consumer(user_id=user_id, device_id=device_id)
        if consumer is not None and consumer.accepting_calls:
            return consumer, None
    device = await database_sync_to_async(device_get_online)(user_id=user_id, device_id=device_id)
    if device is None:
        raise DeviceOfflineError()
    consumer = connections.local_consumer(user_id=user_id, device_id=device.device_id)
    if consumer is not None and consumer.channel_name == device.channel_name and consumer.accepting_calls:
        return consumer, None
    return None, device


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

    ``device_id=None`` picks the user's most recently seen online device. Raises
    DeviceOfflineError, DeviceTimeoutError, DeviceDisconnectedError (fast, on a disconnect during
    the call), DeviceToolError (the client's ``error``) or DeviceBusyError.
    """
    user_id = str(user_id)
    timeout = settings.DEVICE_TOOL_CALL_TIMEOUT if timeout is None else timeout
    call = _build_call(action=action, table=table, data=data, filters=filters, vector=vector, limit=limit)
    consumer, device = await _locate(user_id=user_id, device_id=device_id)
    with metrics.tool_call_timer(route="own_process" if consumer is not None else "channel_layer"):
        if consumer is not None:
            return await consumer.local_call(call, timeout=timeout)
        assert device is not None
        return await _remote_call(device=device, call=call, timeout=timeout)


async def _remote_call(*, device: Device, call: ToolCall, timeout: float) -> dict:  # noqa: ASYNC109
    layer = loop_layer()
    reply_channel = await layer.new_channel(prefix="devices.reply")
    message = {
        "type": MSG_TOOL_CALL,
        "reply_channel": reply_channel,
        "user_id": str(device.user_id),
        "device_id": device.device_id,
        "deadline": time.time() + timeout,
        "call": call.model_dump(exclude_none=True),
    }
    try:
        await layer.send(device.channel_name, message)
    except ChannelFull as exc:
        raise DeviceBusyError() from exc
    try:
        reply = await asyncio.wait_for(layer.receive(reply_channel), timeout)
    except TimeoutError:
        # Let the consumer forget the call, so a late result is dropped where it arrives.
        with contextlib.suppress(Exception):
            await layer.send(device.channel_name, {"type": MSG_TOOL_CANCEL, "call_id": call.id})
        raise DeviceTimeoutError() from None
    finally:
        # channels-redis keeps a buffer per local channel; a reply channel is never read again.
        buffers = getattr(layer, "receive_buffer", None)
        if buffers is not None:
            buffers.pop(reply_channel, None)
    if reply["type"] == MSG_RESULT:
        if reply.get("error") is not None:
            raise DeviceToolError(reply["error"])
        return reply["result"]
    raise ERROR_BY_CODE.get(reply.get("code", ""), DeviceOfflineError)(reply.get("message"))


async def send_to_device(*, user_id, frame: dict, device_id: str | None = None) -> str:
    """Send a server-initiated frame (e.g. ``agent_run``) to the device; returns the device_id used."""
    user_id = str(user_id)
    parse_outgoing(frame)  # fail in the caller, not on the socket
    consumer, device = await _locate(user_id=user_id, device_id=device_id)
    if consumer is not None:
        await consumer.session.send(frame)
        return consumer.device_id
    assert device is not None
    try:
        await loop_layer().send(
            device.channel_name,
            {"type": MSG_SEND_FRAME, "user_id": user_id, "device_id": device.device_id, "frame": frame},
        )
    except ChannelFull as exc:
        raise DeviceBusyError() from exc
    return device.device_id


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
