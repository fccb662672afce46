"""Tool-call round trip, as a ratio of a raw ``websockets`` echo round trip measured in the same run.

    .venv/bin/python bench/device_roundtrip.py [--n 2000] [--servers uvicorn,daphne]

For each server: (1) from the socket's own process (a handler timing ``call_device`` on the
server's loop), (2) from a separate process through the channel layer (Redis). The device is the
reference client (it runs a real SQLite ``get`` per call). Also measures the thread hop Channels
4.2+ adds before every handler (``aclose_old_connections``), which the consumer skips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from device_common import ROOT, free_port, make_users, percentile, setup_django, start_server, stop


async def echo_baseline(n: int) -> list[float]:
    """Round trip of a tool_call-sized JSON frame to a raw websockets echo server in another process."""
    port = free_port()
    code = (
        "import asyncio, websockets\n"
        "async def echo(ws):\n"
        "    async for m in ws: await ws.send(m)\n"
        "async def main():\n"
        f"    async with websockets.serve(echo, '127.0.0.1', {port}): await asyncio.Future()\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])  # noqa: ASYNC220  (started once, before timing)
    import websockets

    try:
        for _ in range(100):
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}")
                break
            except OSError:
                await asyncio.sleep(0.1)
        call = {"type": "tool_call", "id": "0" * 32, "action": "get", "table": "tasks", "data": {"id": "x"}}
        frame = json.dumps(call)
        samples = []
        for _ in range(n + 100):
            start = time.perf_counter()
            await ws.send(frame)
            json.loads(await ws.recv())
            samples.append(time.perf_counter() - start)
        await ws.close()
        return samples[100:]
    finally:
        proc.terminate()
        proc.wait()


async def thread_hop_cost(n: int) -> float:
    """Mean cost of channels' aclose_old_connections (a sync_to_async hop) in this process."""
    from channels.db import aclose_old_connections

    for _ in range(50):
        await aclose_old_connections()
    start = time.perf_counter()
    for _ in range(n):
        await aclose_old_connections()
    return (time.perf_counter() - start) / n


async def measure_server(kind: str, n: int, user_id: str, token: str) -> dict[str, list[float]]:
    from apps.devices.client import DeviceClient

    port = free_port()
    proc = start_server(kind, port)
    try:
        client = DeviceClient(f"ws://127.0.0.1:{port}/api/v1/ws/device", token, device_id=f"bench-{kind}")
        await client.connect()
        await asyncio.sleep(0.5)  # hello recorded
        # (1) from the socket's own process
        local: list[float] = []
        async for frame in client.home_request(f"roundtrip {n + 100}"):
            if frame["type"] == "stream_text":
                local = json.loads(frame["chunk"])[100:]
            elif frame["type"] == "error":
                raise RuntimeError(frame)
        # (2) from another process, through the channel layer
        caller = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "device_roundtrip.py"),
            "--caller",
            user_id,
            client.device_id,
            str(n + 100),
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
        )
        out, _ = await caller.communicate()
        remote = json.loads(out.decode().strip().splitlines()[-1])[100:]
        await client.close()
        return {"local": local, "remote": remote}
    finally:
        stop(proc)


async def remote_caller(user_id: str, device_id: str, n: int) -> None:
    from apps.devices.services import call_device

    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call_device(user_id=user_id, device_id=device_id, action="get", table="tasks", data={"id": "x"})
        samples.append(time.perf_counter() - start)
    print(json.dumps(samples))


def fmt(samples: list[float], base50: float, base99: float) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return f"p50 {p50 * 1e3:7.3f} ms ({p50 / base50:5.1f}x)   p99 {p99 * 1e3:7.3f} ms ({p99 / base99:5.1f}x)"


async def main(args: argparse.Namespace, user_id: str, token: str) -> None:
    echo = await echo_baseline(args.n)
    b50, b99 = percentile(echo, 50), percentile(echo, 99)
    print(f"baseline raw websockets echo: p50 {b50 * 1e3:.3f} ms  p99 {b99 * 1e3:.3f} ms  (n={args.n})")
    hop = await thread_hop_cost(2000)
    print(f"Channels' per-handler close_old_connections hop: {hop * 1e3:.3f} ms each ({hop / b50:.1f}x echo p50)")
    for kind in args.servers.split(","):
        result = await measure_server(kind, args.n, user_id, token)
        print(f"{kind:8s} call_device, socket's own process : {fmt(result['local'], b50, b99)}")
        print(f"{kind:8s} call_device, other process (Redis): {fmt(result['remote'], b50, b99)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--caller":
        setup_django()
        asyncio.run(remote_caller(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("--n", type=int, default=2000)
        parser.add_argument("--servers", default="uvicorn,daphne")
        setup_django(migrate=True)
        [(uid, access)] = make_users(1, prefix="roundtrip")
        asyncio.run(main(parser.parse_args(), uid, access))
