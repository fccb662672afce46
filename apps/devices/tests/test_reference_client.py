"""The reference device client on its own (``manage.py device`` runs it for as long as an operator
likes): what it keeps of the frames it served stays bounded, its store calls keep their order, and a
slow one does not hold its answers to pings."""

from __future__ import annotations

import asyncio
import json
import threading

import websockets

from apps.devices.client import DeviceClient, LocalStore
from apps.devices.client.client import HISTORY


async def test_a_long_running_client_keeps_a_bounded_history_of_what_it_served():
    # given a server that sends many more pings and tool calls than the client keeps, then closes
    frames = 3 * HISTORY
    answered = 0

    async def serve(ws):
        nonlocal answered
        await ws.recv()  # the hello
        for n in range(frames):
            await ws.send(json.dumps({"type": "ping"}))
            call = {"type": "tool_call", "id": f"c{n}", "action": "get", "table": "tasks", "data": {}}
            await ws.send(json.dumps(call))
        while answered < 2 * frames:  # a pong and a tool_result for each
            await ws.recv()
            answered += 1

    async with websockets.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = DeviceClient(f"ws://127.0.0.1:{port}/api/v1/ws/device", "token")
        await client.connect()
        # when it has served them all
        await asyncio.wait_for(client.run_forever(), timeout=60)

    # then every one was answered, and only the latest are kept
    assert answered == 2 * frames
    assert client.pings == frames
    assert len(client.received) <= 2 * HISTORY
    assert len(client.tool_calls) <= 2 * HISTORY
    assert client.tool_calls[-1]["id"] == f"c{frames - 1}"
    assert client.received[-1] == "tool_call"


async def _served(serve, client_class: type[DeviceClient] = DeviceClient) -> DeviceClient:
    """Run ``client_class`` against ``serve`` (a websockets handler) until the server closes."""
    async with websockets.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = client_class(f"ws://127.0.0.1:{port}/api/v1/ws/device", "token")
        await client.connect()
        await asyncio.wait_for(client.run_forever(), timeout=30)
    return client


async def test_calls_on_the_store_are_answered_in_the_order_they_came():
    # given a server that sends inserts and gets of the same rows back to back, without waiting
    answers: list[dict] = []

    async def serve(ws):
        await ws.recv()  # the hello
        for n in range(50):
            insert = {"type": "tool_call", "id": f"i{n}", "action": "insert", "table": "clients"}
            await ws.send(json.dumps({**insert, "data": {"id": f"row{n}", "name": f"client {n}"}}))
            await ws.send(
                json.dumps(
                    {"type": "tool_call", "id": f"g{n}", "action": "get", "table": "clients", "data": {"id": f"row{n}"}}
                )
            )
        answers.extend([json.loads(await ws.recv()) for _ in range(100)])

    # when the client serves them from its store
    await _served(serve)

    # then every call was answered in the order sent, each get finding the row inserted before it
    assert [a["id"] for a in answers] == [f"{kind}{n}" for n in range(50) for kind in ("i", "g")]
    assert all(a["type"] == "tool_result" and a["row"]["name"] == f"client {i // 2}" for i, a in enumerate(answers))


async def test_a_client_whose_run_tool_is_overridden_answers_through_it():
    # given a client class that runs tool calls its own way
    class Remote(DeviceClient):
        async def run_tool(self, call):
            await asyncio.sleep(0)
            return {"row": {"served_by": "override", "action": call["action"]}}

    answers: list[dict] = []

    async def serve(ws):
        await ws.recv()
        await ws.send(json.dumps({"type": "tool_call", "id": "c1", "action": "get", "table": "tasks", "data": {}}))
        answers.append(json.loads(await ws.recv()))

    # when the server calls it
    await _served(serve, Remote)

    # then the override answered, not the store
    assert answers == [{"type": "tool_result", "id": "c1", "row": {"served_by": "override", "action": "get"}}]


async def test_frames_json_reads_and_orjson_refuses_are_still_read_and_sent():
    # given a server that sends a frame with NaN (json reads it, orjson refuses)
    received: list[str] = []

    async def serve(ws):
        await ws.recv()
        await ws.send('{"type": "ping", "extra": NaN}')
        received.append(await ws.recv())

    # when the client answers it, and later sends a frame with a lone surrogate
    client = await _served(serve)

    # then the ping was read and answered
    assert client.pings == 1
    assert json.loads(received[0]) == {"type": "pong"}


class HeldStore(LocalStore):
    """The client's store, with ``vector_search`` held until the test lets it go (a search over a
    large store, deterministically long)."""

    def __init__(self) -> None:
        super().__init__()
        self.searching = threading.Event()
        self.release = threading.Event()

    def _do_vector_search(self, call):
        self.searching.set()
        self.release.wait(5)  # on a client that runs it in its read loop, nothing else moves meanwhile
        return super()._do_vector_search(call)


async def test_a_slow_store_call_in_flight_does_not_hold_the_pong_and_later_calls_keep_their_order():
    # given a client whose vector_search takes until the server lets it go
    store = HeldStore()
    store.execute({"action": "vector_upsert", "data": {"id": "v1", "content": "invoice"}, "vector": [1.0, 0.0]})
    answers: list[dict] = []

    async def serve(ws):
        await ws.recv()  # the hello
        search = {"type": "tool_call", "id": "s1", "action": "vector_search", "vector": [1.0, 0.0]}
        await ws.send(json.dumps(search))
        await ws.send(json.dumps({"type": "ping"}))
        insert = {"type": "tool_call", "id": "i1", "action": "insert", "table": "clients"}
        await ws.send(json.dumps({**insert, "data": {"id": "row1", "name": "Acme"}}))
        answers.append(json.loads(await ws.recv()))
        store.release.set()
        answers.extend([json.loads(await ws.recv()) for _ in range(2)])

    # when the server sends a ping and a cheap call behind the slow one
    async with websockets.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = DeviceClient(f"ws://127.0.0.1:{port}/api/v1/ws/device", "token", store=store)
        await client.connect()
        await asyncio.wait_for(client.run_forever(), timeout=30)

    # then the pong came while the search was still running, and the calls were answered in order
    assert store.searching.is_set()
    assert [a.get("id", a["type"]) for a in answers] == ["pong", "s1", "i1"]
    assert answers[1]["results"][0]["id"] == "v1"
    assert answers[2]["row"]["name"] == "Acme"
