"""What a device socket does with the channel-layer messages addressed to its channel.

Other processes (and loops) reach one socket through its channel: ``services`` sends a frame to
forward, a stream frame of a request resumed here, a tool call (only a caller that found the device
in the database rather than the presence index), its cancellation, the notice that another socket
took the device, a close. The consumer's ``devices_*`` methods (Channels dispatches by message type)
delegate here. A message meant for another user's or device's socket (the channel was reused) is
ignored.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from . import tool_calls
from .close_codes import DeviceCloseCode
from .errors import DeviceDisconnectedError

if TYPE_CHECKING:
    from .device_socket import DeviceSocket


async def on_tool_call(consumer: DeviceSocket, message: dict) -> None:
    await tool_calls.remote_call(consumer, message)


async def on_tool_cancel(consumer: DeviceSocket, message: dict) -> None:
    consumer.pending.forget(message["call_id"])


async def on_send_frame(consumer: DeviceSocket, message: dict) -> None:
    if consumer.addressed_to_me(message):
        with contextlib.suppress(DeviceDisconnectedError):
            await consumer.send_frame(message["frame"])


async def on_stream_frame(consumer: DeviceSocket, message: dict) -> None:
    """A frame of a request another process runs, for a socket that resumed it here."""
    if message.get("user_id") == consumer.user_id:
        with contextlib.suppress(DeviceDisconnectedError):
            await consumer.send_text(message["text"])


async def on_replaced(consumer: DeviceSocket, message: dict) -> None:
    if consumer.addressed_to_me(message):
        await consumer.close_with(DeviceCloseCode.REPLACED)


async def on_close(consumer: DeviceSocket, message: dict) -> None:
    if message.get("user_id") == consumer.user_id:
        await consumer.close_with(message["code"])
