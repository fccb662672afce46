"""Tool calls on the device socket: the server asks the device (``tool_call``), the device answers
(``tool_result``).

``local_call`` serves callers on the socket's own event loop (``services.call_device`` found the
consumer in ``connections``); ``remote_call`` serves callers elsewhere, who published the call to
this loop's node (``_on_node_tool_call``) or to the socket's channel, and are answered on their
node (``answer``). What is in flight lives in the consumer's ``PendingCalls``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING

from django.conf import settings

from apps.core.errors import ApplicationError

from . import connections, services
from .errors import DeviceBusyError, DeviceDisconnectedError, DeviceToolError
from .frames import ToolResult, tool_call_frame, tool_call_json
from .hot_settings import hot_setting
from .node import MSG_FAILED, MSG_RESULT, node_publish, node_publish_soon, register_message_handler

if TYPE_CHECKING:
    from .device_socket import DeviceSocket

logger = logging.getLogger(__name__)


def failure(error: ApplicationError, call_id: str, *, not_held: bool = False) -> dict:
    """A call's failure, for its caller's node. ``not_held``: this loop does not hold the device (or
    its socket is closing) and the call reached no socket, so a caller that sent it here from memory
    may look the device up and send it again (``presence_index.holder_cached``)."""
    message: dict[str, object] = {"type": MSG_FAILED, "call_id": call_id, "code": error.code, "message": error.message}
    if not_held:
        message["not_held"] = True
    return message


async def answer(reply_to: str, message: dict) -> None:
    """Answer a remote caller on its node; a caller that is gone learns nothing (and needs nothing)."""
    try:
        await node_publish(reply_to, message)
    except Exception:
        logger.warning("device socket: could not answer call %s", message.get("call_id"), exc_info=True)


_answering: set[asyncio.Task] = set()


def answer_soon(reply_to: str, message: dict) -> None:
    """``answer`` in a task of its own: what a handler run eagerly by the node (in the subscription's
    callback, outside any task) does instead of publishing itself, since opening the publisher's
    connection enters an ``asyncio.timeout``, which needs a task."""
    task = asyncio.ensure_future(answer(reply_to, message))
    _answering.add(task)
    task.add_done_callback(_answering.discard)


async def local_call(consumer: DeviceSocket, call: dict, *, timeout: float) -> dict:  # noqa: ASYNC109
    """A tool call (a ``tool_call_frame``) from the socket's event loop: send, then await the future
    the result resolves. The deadline is the pending table's timer (``wait_for`` would add a waiter
    future and callbacks to every call, a timer per call cost uvloop about 5 µs)."""
    if not consumer.accepting_calls:
        raise DeviceDisconnectedError()
    if len(consumer.pending) >= hot_setting("DEVICE_MAX_PENDING_CALLS"):
        raise DeviceBusyError()
    call_id = call["id"]
    future = consumer.pending.add_local(call_id, timeout=timeout)
    try:
        await consumer.send_text(tool_call_json(call))
        result: ToolResult = await future
    finally:
        consumer.pending.forget(call_id)
    if result.error is not None:
        raise DeviceToolError(result.error)
    return result.payload()


async def remote_call(consumer: DeviceSocket, message: dict) -> None:
    """A tool call from another loop or process (services._remote_call); answered on its node.

    Run eagerly by the node (``_on_node_tool_call``): up to the socket write, which does not wait on
    an open socket, it takes no timeout and reads no current task; a refusal is answered in a task."""
    call, reply_to = message["call"], message["reply_to"]
    if not consumer.addressed_to_me(message) or not consumer.accepting_calls:
        answer_soon(reply_to, failure(DeviceDisconnectedError(), call["id"], not_held=True))
        return
    if message["deadline"] <= time.time():
        return  # the caller has given up already
    if len(consumer.pending) >= settings.DEVICE_MAX_PENDING_CALLS:
        answer_soon(reply_to, failure(DeviceBusyError(), call["id"]))
        return
    consumer.pending.add_remote(call["id"], deadline=message["deadline"], reply_to=reply_to)
    try:
        # Built by the caller's tool_call_frame; checked again, as any frame from elsewhere.
        await consumer.send_text(tool_call_json(tool_call_frame(**call)))
    except DeviceDisconnectedError:
        consumer.pending.forget(call["id"])
        answer_soon(reply_to, failure(DeviceDisconnectedError(), call["id"]))


def _answer_failed(call_id: object, sent: asyncio.Future) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        logger.warning("device socket: could not answer call %s", call_id, exc_info=sent.exception())


def answer_now(reply_to: str, message: dict) -> None:
    """``answer`` without waiting for Redis's reply (the caller needs none): written to the open
    publishing connection at once, else sent from a task of its own (``answer_soon``)."""
    try:
        sent = node_publish_soon(reply_to, message)
    except Exception:  # the connection went down under it: the task opens another
        sent = None
    if sent is None:
        answer_soon(reply_to, message)
    else:
        sent.add_done_callback(functools.partial(_answer_failed, message.get("call_id")))


async def tool_result_received(consumer: DeviceSocket, result: ToolResult) -> None:
    """The device answered a call: resolve the local waiter, or answer the remote caller (its socket's
    reading goes on at once, not after Redis replied to the answer's publish)."""
    reply_to = consumer.pending.resolve(result.id, result)
    if reply_to is not None:
        answer_now(
            reply_to, {"type": MSG_RESULT, "call_id": result.id, "result": result.payload(), "error": result.error}
        )


# Tool calls published to this loop's node (services._remote_call) go to the socket they name.


async def _on_node_tool_call(message: dict) -> None:
    consumer = connections.local_consumer(user_id=message.get("user_id", ""), device_id=message.get("device_id", ""))
    if consumer is None:
        answer_soon(message["reply_to"], failure(DeviceDisconnectedError(), message["call"]["id"], not_held=True))
        return
    await remote_call(consumer, message)


async def _on_node_tool_cancel(message: dict) -> None:
    consumer = connections.local_consumer(user_id=message.get("user_id", ""), device_id=message.get("device_id", ""))
    if consumer is not None:
        consumer.pending.forget(message["call_id"])


# Both eager: a call handed to a socket held here, or a cancellation, then needs no task at all.
register_message_handler(services.MSG_TOOL_CALL, _on_node_tool_call, eager=True)
register_message_handler(services.MSG_TOOL_CANCEL, _on_node_tool_cancel, eager=True)
