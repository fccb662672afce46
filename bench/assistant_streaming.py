"""Assistant streaming: scripted model → ChatOpenAI → LangGraph → sanitizer → socket → reference client,
as a ratio of the same tokens sent by a raw websockets server in the same run.

    .venv/bin/python bench/assistant_streaming.py [--tokens 400] [--pace-ms 2] [--runs 5]

Two figures per path, each the median of ``--runs`` requests:
* throughput: the model streams ``--tokens`` five-character tokens as fast as it can; stream_text
  frames per second and tokens per second reaching the client;
* latency: tokens paced ``--pace-ms`` apart; for each token, time from the model (or raw server)
  writing it to the client holding it. The stack's extra latency includes the sanitizer's
  hold-back window (text is released once enough follows it to rule out a split prompt leak).
The stack runs under uvicorn in a thread of this process, like the raw server, so both share
one interpreter. Time to first text also includes memory enrichment (one embedding + queries).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
os.environ.setdefault("ADIUVA_TEST_RUN", "asstbench")

import device_common  # noqa: E402

device_common.BENCH_DB = "adiuva_asstbench"
TOKEN = "word "


class ServerThread:
    """uvicorn serving adiuva.asgi on a loopback port, in a thread with its own loop."""

    def __init__(self) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config("adiuva.asgi:application", lifespan="off", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def stack_run(client, llm, n: int, pace: float) -> dict:
    from apps.assistant.testing.scripted_openai import Reply

    written: list[float] = []
    llm.script(Reply(text=TOKEN * n, chunk_size=len(TOKEN), chunk_delay=pace, written_at=written))
    arrivals: list[tuple[float, int]] = []  # (time, cumulative chars held by the client)
    held = 0
    start = time.perf_counter()
    async for frame in client.home_request("stream please"):
        if frame["type"] == "stream_text":
            held += len(frame["chunk"])
            arrivals.append((time.perf_counter(), held))
        if frame["type"] == "error":
            raise RuntimeError(frame)
    return _figures(start, written, arrivals, n)


def _figures(start: float, written: list[float], arrivals: list[tuple[float, int]], n: int) -> dict:
    if not arrivals or arrivals[-1][1] != n * len(TOKEN):
        raise RuntimeError("the whole text did not arrive")
    latencies = []
    j = 0
    for i, wrote in enumerate(written):
        needed = (i + 1) * len(TOKEN)
        while arrivals[j][1] < needed:
            j += 1
        latencies.append(arrivals[j][0] - wrote)
    span = max(arrivals[-1][0] - arrivals[0][0], 1e-9)
    return {
        "frames_per_s": len(arrivals) / span if len(arrivals) > 1 else float("nan"),
        "tokens_per_s": n / (arrivals[-1][0] - start),
        "first_text_ms": (arrivals[0][0] - start) * 1000,
        "token_latency_ms": statistics.mean(latencies) * 1000,
        "frames": len(arrivals),
    }


def start_raw_server(written_by_request: list[list[float]]) -> tuple[int, threading.Thread]:
    """A bare websockets server streaming the same tokens as stream_text frames."""
    import websockets

    port = device_common.free_port()
    ready = threading.Event()

    async def handler(ws):
        async for message in ws:
            request = json.loads(message)
            written: list[float] = []
            written_by_request.append(written)
            await ws.send(json.dumps({"type": "stream_start", "request_id": "r"}))
            for _ in range(request["n"]):
                await ws.send(json.dumps({"type": "stream_text", "request_id": "r", "chunk": TOKEN}))
                written.append(time.perf_counter())
                if request["pace"]:
                    await asyncio.sleep(request["pace"])
            await ws.send(json.dumps({"type": "stream_end", "request_id": "r", "mutations": []}))

    async def main():
        async with websockets.serve(handler, "127.0.0.1", port):
            ready.set()
            await asyncio.Future()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    ready.wait(10)
    return port, thread


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


async def measure(args) -> None:
    import websockets
    from asgiref.sync import sync_to_async
    from django.conf import settings

    from apps.assistant.testing.scripted_openai import ScriptedOpenAI
    from apps.devices.client import DeviceClient

    llm = ScriptedOpenAI().start()
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-bench", llm.base_url
    settings.ASSISTANT_REQUEST_TIMEOUT = 120.0
    settings.ASSISTANT_LLM_TIMEOUT = 60.0
    server = ServerThread()
    server.start()
    ((_user_id, token),) = await sync_to_async(device_common.make_users)(1, prefix="asstbench")
    client = DeviceClient(f"ws://127.0.0.1:{server.port}/api/v1/ws/device", token)
    await client.connect()
    await asyncio.sleep(0.5)  # the hello is recorded
    written_by_request: list[list[float]] = []
    port, _ = start_raw_server(written_by_request)
    raw_ws = await websockets.connect(f"ws://127.0.0.1:{port}", max_size=None)

    results = {}
    for label, pace in (("throughput", 0.0), ("latency", args.pace_ms / 1000)):
        await stack_run(client, llm, 20, 0.0)  # warm-up (graph compile, connections)
        stack = [await stack_run(client, llm, args.tokens, pace) for _ in range(args.runs)]
        raw = []
        for _ in range(args.runs):
            before = len(written_by_request)
            raw.append(await raw_run(raw_ws, args.tokens, pace, written_by_request, before))
        results[label] = (median_of(stack), median_of(raw))

    await raw_ws.close()
    await client.close()
    server.stop()
    llm.stop()
    _report(args, results)


async def raw_run(ws, n: int, pace: float, written_by_request: list[list[float]], before: int) -> dict:
    arrivals: list[tuple[float, int]] = []
    held = 0
    start = time.perf_counter()
    await ws.send(json.dumps({"type": "home_request", "message": "stream please", "n": n, "pace": pace}))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "stream_text":
            held += len(frame["chunk"])
            arrivals.append((time.perf_counter(), held))
        elif frame["type"] == "stream_end":
            break
    return _figures(start, written_by_request[before], arrivals, n)


def _report(args, results) -> None:
    print(f"assistant streaming, {args.tokens} tokens of {len(TOKEN)} chars, median of {args.runs} runs")
    stack, raw = results["throughput"]
    print("throughput (model streams as fast as it can):")
    for name, r in (("stack", stack), ("raw", raw)):
        frames, tokens = r["frames_per_s"], r["tokens_per_s"]
        print(f"  {name:5}: {frames:.0f} frames/s ({r['frames']:.0f} frames), {tokens:.0f} tokens/s")
    frames_ratio = stack["frames_per_s"] / raw["frames_per_s"]
    tokens_ratio = stack["tokens_per_s"] / raw["tokens_per_s"]
    print(f"  ratio stack/raw: frames/s {frames_ratio:.3f}, tokens/s {tokens_ratio:.3f}")
    stack, raw = results["latency"]
    print(f"latency (tokens paced {args.pace_ms} ms apart):")
    for name, r in (("stack", stack), ("raw", raw)):
        print(f"  {name:5}: mean token latency {r['token_latency_ms']:.2f} ms, first text {r['first_text_ms']:.1f} ms")
    added = stack["token_latency_ms"] - raw["token_latency_ms"]
    ratio = stack["token_latency_ms"] / raw["token_latency_ms"]
    print(f"  added latency per token: {added:.1f} ms (ratio stack/raw {ratio:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--pace-ms", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    device_common.setup_django(migrate=True)
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
