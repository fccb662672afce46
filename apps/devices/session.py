"""The session a frame or connect handler gets (``handlers.DeviceSession``): the socket's owner and
device, ``send``, ``call`` and ``call_opened``.

A request's session carries its stream: frames with the request's ``request_id`` are numbered and
logged there, so they survive a dropped socket. Without a stream (messages, connect handlers)
frames go straight to the socket.

A session holds its socket weakly: a handler that outlives the socket (a request, or one stuck past
the pause limit and deaf to its cancellation) does not keep the closed socket in memory; sending on
it then fails as on any closed socket (``DeviceDisconnectedError``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from . import services
from .errors import DeviceDisconnectedError

if TYPE_CHECKING:
    from .device_socket import DeviceSocket
    from .streams import RequestStream


class Session:
    def __init__(self, consumer: DeviceSocket, stream: RequestStream | None = None) -> None:
        self._consumer = weakref.ref(consumer)
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
        await self._socket().send_frame(data)

    async def send_error(self, code: str, message: str, request_id: str | None = None) -> None:
        """An ``error`` frame to the socket, if it is still there (``DeviceConsumer.send_error``)."""
        consumer = self._consumer()
        if consumer is not None:
            await consumer.send_error(code, message, request_id)

    def call_opened(self, opened_by: str, key: str) -> None:
        """This socket awaits answers to a call ``opened_by`` sent on an earlier socket of the device."""
        consumer = self._consumer()
        if consumer is not None:  # else it is gone: nothing awaits answers there
            consumer.call_opened(opened_by, key)

    def _socket(self) -> DeviceSocket:
        consumer = self._consumer()
        if consumer is None:
            raise DeviceDisconnectedError()
        return consumer

    async def call(self, **kwargs: Any) -> dict:
        """``call_device`` on this device (its current socket, wherever it is)."""
        return await services.call_device(user_id=self.user_id, device_id=self.device_id, **kwargs)
