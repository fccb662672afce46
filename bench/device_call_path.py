"""The server's own code per tool call from the socket's own process, with no socket: microseconds
per ``call_device``, this checkout against another one, interleaved.

    .venv/bin/python -m adiuva.embedded run -- \
        .venv/bin/python bench/device_call_path.py [--n 20000] [--rounds 5] [--old PATH]

One device socket is driven through the real ASGI stack (the auth middleware, ``DeviceConsumer``, the
hello's database and Redis work) on a uvloop loop, as uvicorn runs it, but its ``receive`` and
``send`` are an in-memory queue and a function: each ``tool_call`` sent is answered at once with a
pre-built ``tool_result`` put on that queue (the ASGI server's own queue is an ``asyncio.Queue``
too). What is timed is everything the server runs per call except the WebSocket framing, deflate
and the socket: build the call, the pending table and its deadline, the ASGI send, the consumer's
receive loop and dispatch, the frame intake (budget, JSON, validation), resolving the caller and the
metric. ``device_roundtrip.py`` measures the whole round trip against a raw echo.

Each round runs every checkout in a process of its own (ADIUVA_BENCH_CODE), alternating which goes
first, and prints the loop thread's CPU µs per call; the medians and the ratio new / old close the output.

2026-12-06, fourth stop, 8 rounds against 129053e at load 3.4-3.9: 21.6 -> 19.8 µs per call (0.88x);
the metric's observation 2.00 -> 0.73 µs (own-process calls tallied on the loop, written once a second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from device_common import ROOT, make_users, setup_django

RESULT = '{"type":"tool_result","id":"%s","row":null}'


async def measure(n: int, user_id: str, token: str) -> tuple[float, float]:
    from apps.devices.consumers import DeviceConsumer
    from apps.devices.middleware import DeviceSocketAuthMiddleware
    from apps.devices.services import call_device

    inbox: asyncio.Queue[dict] = asyncio.Queue()

    async def receive() -> dict:
        return await inbox.get()

    async def send(message: dict) -> None:
        text = message.get("text")
        if message["type"] == "websocket.send" and text and text.startswith('{"type":"tool_call"'):
            start = text.index('"id":"') + 6
            inbox.put_nowait({"type": "websocket.receive", "text": RESULT % text[start : text.index('"', start)]})

    scope = {
        "type": "websocket",
        "path": "/api/v1/ws/device",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    app = DeviceSocketAuthMiddleware(DeviceConsumer.as_asgi())
    device_id = "bench-call-path"
    inbox.put_nowait({"type": "websocket.connect"})
    hello = {"type": "device_hello", "device_id": device_id, "agent_ids": []}
    inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(hello)})
    socket = asyncio.ensure_future(app(scope, receive, send))
    for _ in range(200):  # the hello is recorded
        try:
            await call_device(user_id=user_id, device_id=device_id, action="get", table="tasks", data={"id": "x"})
            break
        except Exception:
            await asyncio.sleep(0.05)
    for _ in range(500):
        await call_device(user_id=user_id, device_id=device_id, action="get", table="tasks", data={"id": "x"})
    # CPU time of the loop's thread: nothing here waits, so it is the code's own cost, whatever
    # else the machine runs (wall time on a busy box mostly measures the wait for a core).
    profiler = None
    if os.environ.get("BENCH_PYINSTRUMENT"):  # pyinstrument is not a requirement: install it to use this
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
    start = time.thread_time()
    for _ in range(n):
        await call_device(user_id=user_id, device_id=device_id, action="get", table="tasks", data={"id": "x"})
    elapsed = time.thread_time() - start
    if profiler is not None:
        profiler.stop()
        report = profiler.output_text(unicode=False, color=False, show_all=False)
        with open(os.environ["BENCH_PYINSTRUMENT"], "w") as out:  # noqa: ASYNC230 (after the timing)
            out.write(report)
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await socket
    return elapsed / n, metric_cost(n)


def metric_cost(n: int) -> float:
    """CPU per observation of the per-call metric (``tool_call_observed``, in multiprocess mode as
    production runs it), alone: the part of the call path that is the metric."""
    from apps.core.metrics import tool_call_observed

    start = time.thread_time()
    for _ in range(n):
        tool_call_observed(route="own_process", started=time.perf_counter())
    return (time.thread_time() - start) / n


def child(n: int, user_id: str, token: str) -> None:
    import uvloop

    setup_django()
    print(json.dumps(uvloop.run(measure(n, user_id, token))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old", help="another checkout to measure beside this one")
    args = parser.parse_args()
    setup_django(migrate=True)
    [(user_id, token)] = make_users(1, prefix="callpath")
    codes = [("new", str(ROOT))] + ([("old", args.old)] if args.old else [])
    seen: dict[str, list[float]] = {label: [] for label, _ in codes}
    metric_seen: dict[str, list[float]] = {label: [] for label, _ in codes}
    for round_no in range(args.rounds):
        for label, code in codes if round_no % 2 == 0 else codes[::-1]:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(args.n), user_id, token],
                env={**os.environ, "ADIUVA_BENCH_CODE": code},
                cwd=code,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            per_call, metric = json.loads(out.strip().splitlines()[-1])
            seen[label].append(per_call)
            metric_seen[label].append(metric)
            print(
                f"[{round_no + 1}] {label}: {per_call * 1e6:6.2f} us CPU per call, "
                f"of which the metric's observation {metric * 1e6:5.2f} us",
                flush=True,
            )
    medians = {label: statistics.median(values) for label, values in seen.items()}
    print("medians: " + ", ".join(f"{label} {value * 1e6:.2f} us" for label, value in medians.items()))
    metric_medians = {label: statistics.median(values) for label, values in metric_seen.items()}
    print(
        "the metric's observation, medians: "
        + ", ".join(
            f"{label} {value * 1e6:.2f} us ({value / medians[label]:.0%} of the call)"
            for label, value in metric_medians.items()
        )
    )
    if args.old:
        ratios = [new / old for new, old in zip(seen["new"], seen["old"], strict=True)]
        print(f"new / old per round: {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
