"""The session a frame or connect handler gets (``handlers.DeviceSession``): the socket's owner and
device, ``send``, ``call`` and ``call_opened``.

A request's session carries its stream: frames with the request's ``request_id`` are numbered and
logged there, so they survive a dropped socket. Without a stream (messages, connect handlers)
frames go straight to the socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from . import services

if TYPE_CHECKING:
    from .consumers import DeviceConsumer
    from .streams import RequestStream


class Session:
    def __init__(self, consumer: DeviceConsumer, stream: RequestStream | None = None) -> None:
        self._consumer = consumer
        self.stream = stream
        self.user = consumer.user
        self.user_id = consumer.user_id
        self.device_id = consumer.device_id
        self.agent_ids = consumer.agent_ids
        self.capabilities = consumer.capabilities  # negotiated at hello; empty for a seed client

    async def send(self, frame: dict[str, Any] | BaseModel) -> None:
        data = frame.model_dump(exclude_none=True) if isinstance(frame, BaseModel) else frame
        if self.stream is not None and data.get("request_id") == self.stream.request_id:
            self.stream.emit(data)
            if data.get("type") == "stream_end":
                await self.stream.drain()
            return
        await self._consumer.send_frame(data)

    def call_opened(self, opened_by: str, key: str) -> None:
        """This socket awaits answers to a call ``opened_by`` sent on an earlier socket of the device."""
        self._consumer.call_opened(opened_by, key)

    async def call(self, **kwargs: Any) -> dict:
        """``call_device`` on this device (its current socket, wherever it is)."""
        return await services.call_device(user_id=self.user_id, device_id=self.device_id, **kwargs)
