"""The reference device client on its own (``manage.py device`` runs it for as long as an operator
likes): what it keeps of the frames it served stays bounded."""

from __future__ import annotations

import asyncio
import json

import websockets

from apps.devices.client import DeviceClient
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
