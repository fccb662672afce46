"""Answers to the server's own calls do not spend the client's frame budget; a flood still does."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

from apps.devices import channel_inbox, connections
from apps.devices.answer_frames import AnswerOf
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.selectors import device_online_channel
from apps.devices.services import call_device, send_to_device
from apps.devices.tests.conftest import SOCKET_DB, Gate, device_row, held_socket, wait_until

pytestmark = SOCKET_DB


async def test_answers_to_the_servers_calls_leave_the_budget_to_the_client(devices, user, settings):
    # given a bucket of three frames that hardly refills
    settings.DEVICE_FRAME_RATE = 0.001
    settings.DEVICE_FRAME_BURST = 3
    settings.DEVICE_FLOOD_CLOSE_AFTER = 50
    client = await devices(user)

    # when the server makes more calls than the bucket holds and the client answers each
    for n in range(5):
        await call_device(user_id=user.id, action="insert", table="tasks", data={"title": f"Task {n}"})

    # then the client's own frames still have the whole bucket (less its hello)
    for _ in range(2):
        await client.send({"type": "ping"})
        assert await client.next_frame() == {"type": "pong"}


async def test_a_flood_of_tool_results_nobody_asked_for_is_still_dropped_and_closed(devices, user, settings):
    # given a small bucket
    settings.DEVICE_FRAME_RATE = 0.001
    settings.DEVICE_FRAME_BURST = 3
    settings.DEVICE_FLOOD_CLOSE_AFTER = 20
    client = await devices(user)

    # when the client floods answers to calls the server never made
    for n in range(40):
        await client.send({"type": "tool_result", "id": f"never-asked-{n}", "row": None})

    # then it is warned once and closed
    warned = []
    while True:
        frame = await client.next_frame()
        warned.append(frame.get("code"))
        if frame.get("code") == "rate_limited":
            break
    assert await client.wait_closed() == DeviceCloseCode.RATE_LIMITED
    assert warned[-1] == "rate_limited"


async def test_a_piece_waits_for_the_hellos_calls_reopener_only_up_to_the_tool_call_timeout(
    devices, user, settings, frame_handlers
):
    # given a small bucket, a calls reopener that never ends, and a handler of a run's pieces
    settings.DEVICE_FRAME_RATE = 0.001
    settings.DEVICE_FRAME_BURST = 4
    settings.DEVICE_TOOL_CALL_TIMEOUT = 0.5
    handled: list[str] = []

    async def piece(session, frame):
        handled.append(frame.run_id)

    async def never_ends(session):
        await asyncio.Event().wait()

    frame_handlers.register_message_handler("agent_data", piece, answers=AnswerOf(opened_by="agent_run", key="run_id"))
    frame_handlers.register_calls_reopener(never_ends)
    client = await devices(user)
    consumer = held_socket(user, client.device_id)

    # when the device pings, then sends a piece of a run the socket does not await, then pings again
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    await client.send({"type": "agent_data", "run_id": "r1", "files": []})
    await client.send({"type": "ping"})

    # then the ping (which answers nothing) did not wait; the piece went on while the reopener still
    # runs, as any frame: handled and charged (the hello, two pings and the piece spent the bucket)
    assert await client.next_frame() == {"type": "pong"}
    await wait_until(lambda: handled == ["r1"])
    assert consumer.reopening is not None
    assert not consumer.budget.available(1)


class HeldPieces:
    """A handler of run pieces (``agent_data``) that holds each one until the test opens its gate."""

    def __init__(self) -> None:
        self.gate = Gate()
        self.in_flight = 0
        self.most_in_flight = 0
        self.received: list[str] = []

    async def handle(self, session, frame) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self.gate.passed()
        self.in_flight -= 1
        self.received.append(frame.files[0].name)


async def socket_with_held_run(devices, user, frame_handlers):
    """A device socket the server opened run ``r1`` on, and the ``HeldPieces`` holding its pieces."""
    held = HeldPieces()
    answers = AnswerOf(opened_by="agent_run", key="run_id")
    frame_handlers.register_message_handler("agent_data", held.handle, answers=answers)
    client = await devices(user)
    client.agent_handler = lambda frame: asyncio.sleep(0)
    run = {"type": "agent_run", "run_id": "r1", "agent_id": "a1", "config": {}}
    await send_to_device(user_id=user.id, frame=run, device_id=client.device_id)
    await wait_until(lambda: client.agent_runs)  # the socket opened the call before it sent the frame
    return client, held


async def send_pieces(client, count: int) -> None:
    for n in range(count):
        file = {"path": f"/f{n}", "name": f"f{n}", "content": "x", "metadata": {}}
        await client.send({"type": "agent_data", "run_id": "r1", "files": [file]})


async def test_answers_beyond_the_budget_are_paced_by_their_handlers(devices, user, settings, frame_handlers):
    # given a small bucket, a run the server asked this socket for, and a handler of its pieces that
    # holds each piece until released
    settings.DEVICE_FRAME_RATE = 0.001
    settings.DEVICE_FRAME_BURST = 3
    settings.DEVICE_FLOOD_CLOSE_AFTER = 50
    client, held = await socket_with_held_run(devices, user, frame_handlers)

    # when the device sends many more pieces than the bucket or the pace allows, then a ping
    count = settings.DEVICE_ANSWERS_IN_FLIGHT + 4
    await send_pieces(client, count)
    await client.send({"type": "ping"})
    await wait_until(lambda: held.in_flight == settings.DEVICE_ANSWERS_IN_FLIGHT)
    # a socket still reading would answer the ping within milliseconds; give it far longer
    await asyncio.sleep(0.3)
    held_back = client.frames.empty()
    held.gate.open()

    # then no piece was dropped, the socket stopped reading while its handlers were full, and the
    # ping still got its budget afterwards
    assert await client.next_frame() == {"type": "pong"}
    await wait_until(lambda: len(held.received) == count)
    assert sorted(held.received) == sorted(f"f{n}" for n in range(count))
    assert held.most_in_flight == settings.DEVICE_ANSWERS_IN_FLIGHT
    assert held_back


async def test_a_socket_paced_past_the_pong_timeout_is_not_closed_by_the_heartbeat(
    devices, user, settings, frame_handlers
):
    # given short heartbeats, two answers in flight before the socket stops reading, and a handler
    # of a run's pieces held far longer than the pong timeout
    settings.DEVICE_PING_INTERVAL = 0.2
    settings.DEVICE_PONG_TIMEOUT = 0.5
    settings.DEVICE_ANSWERS_IN_FLIGHT = 2
    client, held = await socket_with_held_run(devices, user, frame_handlers)

    # when the device sends more pieces than may be in flight and the socket stops reading (its
    # pongs wait unread) for several pong timeouts
    await send_pieces(client, 4)
    await wait_until(lambda: held.in_flight == 2)
    pings = client.pings
    await asyncio.sleep(4 * settings.DEVICE_PONG_TIMEOUT)
    closed_while_paused = client.close_code
    held.gate.open()

    # then the socket had stopped reading, the heartbeat did not close it, every piece was handled
    # and its heartbeat goes on
    assert held.most_in_flight == 2
    assert closed_while_paused is None
    await wait_until(lambda: len(held.received) == 4)
    await wait_until(lambda: client.pings >= pings + 3)
    assert client.close_code is None
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}


async def test_an_idle_socket_keeps_no_answer_records_or_task_sets(devices, user, frame_handlers):
    # given a socket that said hello, pinged and answered a tool call
    frame_handlers.register_message_handler(
        "agent_data", lambda session, frame: asyncio.sleep(0), answers=AnswerOf(opened_by="agent_run", key="run_id")
    )
    client = await devices(user)
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    await call_device(user_id=user.id, action="insert", table="tasks", data={"title": "Task"})
    consumer = held_socket(user, client.device_id)
    # then it holds no record of open calls and, once its hello's work is done, no sets of tasks
    await wait_until(lambda: consumer.background is None)
    assert consumer.open_calls is None
    assert consumer.messages is None

    # when the server opens a run on it and the device answers
    client.agent_handler = lambda frame: asyncio.sleep(0)
    run = {"type": "agent_run", "run_id": "r1", "agent_id": "a1", "config": {}}
    await send_to_device(user_id=user.id, frame=run, device_id=client.device_id)
    await wait_until(lambda: client.agent_runs)  # the socket opened the call before it sent the frame
    file = {"path": "/f", "name": "f", "content": "x", "metadata": {}}
    await client.send({"type": "agent_data", "run_id": "r1", "files": [file]})
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}

    # then the run is recorded as open, and the handler's task set is gone once it has ended
    assert consumer.open_calls is not None
    assert ("agent_run", "r1") in consumer.open_calls
    await wait_until(lambda: consumer.messages is None)


async def test_a_socket_paused_by_a_handler_that_never_ends_is_closed_as_silent(
    devices, user, settings, frame_handlers
):
    # given short heartbeats, a pause limit of twice the tool-call timeout (1.6 s), two answers in
    # flight before the socket stops reading, and a handler of a run's pieces that never ends
    started: list[str] = []
    cancelled: list[str] = []

    async def never_ends(session, frame):
        started.append(frame.files[0].name)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(frame.files[0].name)
            raise

    client = await _socket_with_run(devices, user, settings, frame_handlers, handler=never_ends)

    # when the device sends more pieces than may be in flight: the socket stops reading for good
    await send_pieces(client, 3)
    await wait_until(lambda: len(started) == 2)

    # then, past the limit, the heartbeat no longer excuses it: it is closed as silent and its stuck
    # handlers are cancelled
    closed = await asyncio.wait_for(client.wait_closed(), timeout=10.0)
    assert closed == DeviceCloseCode.HEARTBEAT_TIMEOUT
    await wait_until(lambda: sorted(cancelled) == ["f0", "f1"])
    assert "f2" not in started


async def test_a_socket_paused_by_a_handler_that_ignores_cancellation_still_goes_offline(
    devices, user, settings, frame_handlers
):
    # given short heartbeats, a pause limit of 1.6 s, two answers in flight before the socket stops
    # reading, and a handler of a run's pieces that never ends and swallows its cancellation
    started: list[str] = []
    ignored: list[str] = []
    released = False

    async def deaf(session, frame):
        started.append(frame.files[0].name)
        while not released:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                ignored.append(frame.files[0].name)

    client = await _socket_with_run(devices, user, settings, frame_handlers, handler=deaf)
    consumer = held_socket(user, client.device_id)
    try:
        # when the device sends more pieces than may be in flight: the socket stops reading for good
        await send_pieces(client, 3)
        await wait_until(lambda: len(started) == 2)

        # then past the limit the socket is closed as silent although its handlers ignored their
        # cancellation, and it is gone: offline in the database, out of the presence index and of
        # the process's table of sockets
        closed = await asyncio.wait_for(client.wait_closed(), timeout=10.0)
        assert closed == DeviceCloseCode.HEARTBEAT_TIMEOUT
        assert sorted(ignored) == ["f0", "f1"]
        await wait_until(lambda: _offline(user, client.device_id), timeout=5.0)
        assert all(consumer not in table.values() for table in list(connections._by_loop.values()))
    finally:
        released = True


async def test_a_socket_torn_down_past_the_pause_limit_leaves_only_its_stuck_handlers_behind(
    devices, user, settings, frame_handlers
):
    # given a socket whose two answer handlers never end and swallow their cancellation
    started: list[str] = []
    released = False

    async def deaf(session, frame):
        started.append(frame.files[0].name)
        while not released:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    client = await _socket_with_run(devices, user, settings, frame_handlers, handler=deaf)
    consumer = held_socket(user, client.device_id)
    socket, channel = weakref.ref(consumer), consumer.channel_name
    del consumer  # only the weak reference is left to the test
    try:
        # when it stops reading for them past the pause limit and is closed as silent
        await send_pieces(client, 3)
        await wait_until(lambda: len(started) == 2)
        assert await asyncio.wait_for(client.wait_closed(), timeout=10.0) == DeviceCloseCode.HEARTBEAT_TIMEOUT

        # then, while the handlers are still stuck, the socket itself is gone: its consumer is freed
        # (nothing but the stuck coroutines is left, and they do not hold it) and its channel is out
        # of the process's channel-layer inbox
        await wait_until(lambda: gc.collect() >= 0 and socket() is None, timeout=5.0)
        assert all(channel not in inbox.sockets for inbox in _inboxes_of_every_loop())
        assert not released
    finally:
        released = True


def _inboxes_of_every_loop():
    return [inbox for per_layer in list(channel_inbox._inboxes.values()) for inbox in per_layer.values()]


async def _socket_with_run(devices, user, settings, frame_handlers, *, handler):
    """A device socket with run ``r1`` open whose pieces go to ``handler``; heartbeats short, the
    pause limit 1.6 s (twice the tool-call timeout), two answers in flight before it stops reading."""
    settings.DEVICE_PING_INTERVAL = 0.2
    settings.DEVICE_PONG_TIMEOUT = 0.3
    settings.DEVICE_TOOL_CALL_TIMEOUT = 0.8
    settings.DEVICE_ANSWERS_IN_FLIGHT = 2
    answers = AnswerOf(opened_by="agent_run", key="run_id")
    frame_handlers.register_message_handler("agent_data", handler, answers=answers)
    client = await devices(user)
    client.agent_handler = lambda frame: asyncio.sleep(0)
    run = {"type": "agent_run", "run_id": "r1", "agent_id": "a1", "config": {}}
    await send_to_device(user_id=user.id, frame=run, device_id=client.device_id)
    await wait_until(lambda: client.agent_runs)
    return client


async def _offline(user, device_id: str) -> bool:
    row = await device_row(user, device_id)
    return (
        row is not None
        and not row.is_online
        and await device_online_channel(user_id=user.id, device_id=device_id) is None
    )
