"""The node's eager message handlers (``node.run_eagerly``) run up to their first wait in the
subscription's callback, outside any task: before it, none may enter an asyncio timeout or read the
current task (``asyncio.timeout`` reads it on entering). Checked on the real paths of a tool call to a
socket of this process: answered, and given up (its cancellation)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from apps.devices import node, services
from apps.devices.errors import DeviceTimeoutError
from apps.devices.tests.conftest import SOCKET_DB, wait_until

pytestmark = SOCKET_DB


@pytest.fixture
def task_reads_before_the_first_wait(monkeypatch) -> list[str]:
    """Where the current task was read while ``run_eagerly`` drove a handler (before its first wait)."""
    reads: list[str] = []
    real = asyncio.tasks.current_task
    eager = node.run_eagerly.__code__

    def spy(loop=None):
        frame = sys._getframe(1)
        caller = f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"
        while frame is not None:
            if frame.f_code is eager:
                reads.append(caller)
                break
            frame = frame.f_back
        return real(loop)

    # timeouts.py looks it up on ``asyncio.tasks`` at each entry; handlers would call ``asyncio.current_task``.
    monkeypatch.setattr(asyncio.tasks, "current_task", spy)
    monkeypatch.setattr(asyncio, "current_task", spy)
    return reads


@pytest.fixture
def timeout_first():
    """An eager handler breaking the rule: it enters a timeout before it first waits."""

    async def handler(message: dict) -> None:
        async with asyncio.timeout(1.0):
            await asyncio.sleep(0)

    node.register_message_handler("test.timeout_first", handler, eager=True)
    yield
    node._message_handlers.pop("test.timeout_first", None)


async def test_a_timeout_entered_before_an_eager_handlers_first_wait_is_caught(
    task_reads_before_the_first_wait, timeout_first
):
    # when a node message reaches the handler that breaks the rule, through Redis and the subscription
    own = await node.loop_node()
    await node.node_publish(own.name, {"type": "test.timeout_first"})

    # then its timeout's entry is caught reading the current task
    await wait_until(lambda: task_reads_before_the_first_wait)
    assert "timeouts.py" in task_reads_before_the_first_wait[0]


async def test_the_eager_tool_call_handlers_take_no_timeout_and_read_no_task_before_their_first_wait(
    devices, user, task_reads_before_the_first_wait, monkeypatch
):
    # given a device socket held by the server's loop: calls from this loop go through its node, to
    # its eager handlers (noted as they run)
    heard: list[str] = []
    for message_type in (services.MSG_TOOL_CALL, services.MSG_TOOL_CANCEL):
        handler, eager = node._message_handlers[message_type]
        assert eager
        monkeypatch.setitem(node._message_handlers, message_type, (_noted(heard, message_type, handler), True))
    client = await devices(user)

    # when a call is answered, and another is given up on (its holder is told to cancel it)
    await services.call_device(
        user_id=user.id, device_id=client.device_id, action="insert", table="tasks", data={"title": "A"}
    )
    silent = asyncio.Event()

    async def never_answers(call):
        await silent.wait()

    client.tool_handler = never_answers
    with pytest.raises(DeviceTimeoutError):
        await services.call_device(
            user_id=user.id, device_id=client.device_id, action="select", table="tasks", timeout=0.3
        )
    await wait_until(lambda: services.MSG_TOOL_CANCEL in heard)
    silent.set()

    # then neither eager handler (the calls, the cancellation) read the current task before it waited
    assert heard == [services.MSG_TOOL_CALL, services.MSG_TOOL_CALL, services.MSG_TOOL_CANCEL]
    assert task_reads_before_the_first_wait == []


def _noted(heard: list[str], message_type: str, handler):
    async def noted(message: dict) -> None:
        heard.append(message_type)
        await handler(message)

    return noted
