"""Benchmark server: adiuva.asgi under uvicorn or daphne, plus a bench ``home_request`` handler.

``python bench/device_server.py uvicorn|daphne PORT``; ``BENCH_UVICORN_WS`` picks uvicorn's websocket
implementation (default ``websockets-sansio``, as the Procfile; ``websockets`` is the deprecated legacy
one, for before/after figures); ``BENCH_TRACEMALLOC=PATH`` writes a snapshot of the traced
allocations to ``PATH.N`` on each SIGUSR1 (N = 0, 1, ...; the first starts tracing);
``BENCH_PYINSTRUMENT=PATH`` profiles the event loop's thread during the roundtrip handler's calls.
The handler answers ``home_request`` with message ``"roundtrip N [ECHO_PORT [JSON_ECHO_PORT DEVICE]]"``
by timing N sequential ``call_device`` calls from the socket's own process to the requesting device
(with ``ECHO_PORT``, each after one round trip to the raw echo server on that port, timed too; with
``JSON_ECHO_PORT DEVICE``, each followed by one round trip to that JSON echo server and one
``call_device`` to ``DEVICE``, a minimal device of the same user on this process), and streams the
timings back as JSON. Not for production.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from device_common import setup_django


async def roundtrip_handler(session, frame) -> None:
    from apps.devices.services import call_device

    words = frame.message.split()
    n = int(words[1])
    echo = await _echo_socket(int(words[2])) if len(words) > 2 else None
    # With a JSON echo port and a minimal device's id: two more round trips per step (see below).
    json_echo = await _echo_socket(int(words[3])) if len(words) > 4 else None
    minimal = words[4] if len(words) > 4 else None
    text = '{"type":"tool_call","id":"' + "0" * 32 + '","action":"get","table":"tasks","data":{"id":"x"}}'
    timed: dict[str, list[float]] = {"call": [], "echo": [], "json_echo": [], "call_min": []}
    # CPU time of this (the event loop's) thread in each round trip: what the server itself spends,
    # whatever the machine's load does to the wall time.
    cpu_of = dict.fromkeys(timed, 0.0)

    async def echo_trip(name: str, socket) -> None:
        cpu, start = time.thread_time(), time.perf_counter()
        await socket.send(text)
        json.loads(await socket.recv())
        timed[name].append(time.perf_counter() - start)
        cpu_of[name] += time.thread_time() - cpu

    async def call_trip(name: str, device_id: str) -> None:
        cpu, start = time.thread_time(), time.perf_counter()
        await call_device(user_id=session.user_id, device_id=device_id, action="get", table="tasks", data={"id": "x"})
        timed[name].append(time.perf_counter() - start)
        cpu_of[name] += time.thread_time() - cpu

    profiler = _profiler()
    for _ in range(n):
        if echo is not None:
            # One raw echo round trip from this same loop before each call: both meet the same load.
            await echo_trip("echo", echo)
        await call_trip("call", session.device_id)
        if json_echo is not None and minimal is not None:
            # A server whose peer does the same work as the minimal device (parse the frame, answer
            # with a pre-built tool_result), then a call to that minimal device: server overhead alone.
            await echo_trip("json_echo", json_echo)
            await call_trip("call_min", minimal)
    if profiler is not None:
        profiler.stop()
        report = profiler.output_text(unicode=False, color=False, show_all=True)
        Path(os.environ["BENCH_PYINSTRUMENT"]).write_text(report)  # noqa: ASYNC240 (a bench, after the timing)
    for socket in (echo, json_echo):
        if socket is not None:
            await socket.close()
    if echo is None:
        chunk = json.dumps(timed["call"])
    else:
        timings: dict[str, object] = {"call": timed["call"], "echo": timed["echo"]}
        timings.update(call_cpu=cpu_of["call"] / n, echo_cpu=cpu_of["echo"] / n)
        if minimal is not None:
            timings.update(json_echo=timed["json_echo"], call_min=timed["call_min"])
            timings.update(json_echo_cpu=cpu_of["json_echo"] / n, call_min_cpu=cpu_of["call_min"] / n)
        chunk = json.dumps(timings)
    await session.send({"type": "stream_text", "request_id": frame.request_id, "chunk": chunk})
    await session.send({"type": "stream_end", "request_id": frame.request_id})


def _profiler():
    """With ``BENCH_PYINSTRUMENT=PATH``: a started pyinstrument profiler of this thread (everything
    the event loop runs meanwhile), whose text report goes to PATH (pyinstrument is not a
    requirement: install it to use this)."""
    if not os.environ.get("BENCH_PYINSTRUMENT"):
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    return profiler


async def _echo_socket(port: int):
    """A client socket to the harness's raw echo server, opened as the harness opens its own
    (``websockets`` defaults, per-message deflate on as the device socket's)."""
    import websockets

    return await websockets.connect(f"ws://127.0.0.1:{port}")


def trace_allocations(path: str) -> None:
    """Each SIGUSR1 dumps a snapshot of the traced allocations to ``path.N``; the first one starts
    tracing (25 frames), so what is compared is what was allocated after it and is still alive."""
    import signal
    import tracemalloc

    dumps = iter(range(1_000_000))

    def dump(_signum, _frame) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(25)
        tracemalloc.take_snapshot().dump(f"{path}.{next(dumps)}")

    signal.signal(signal.SIGUSR1, dump)


def main() -> None:
    kind, port = sys.argv[1], sys.argv[2]
    if os.environ.get("BENCH_TRACEMALLOC"):
        trace_allocations(os.environ["BENCH_TRACEMALLOC"])
    setup_django()
    from apps.devices.handlers import register_request_handler

    register_request_handler("home_request", roundtrip_handler, replace=True)
    if kind == "uvicorn":
        import uvicorn
        from django.conf import settings

        uvicorn.run(
            "adiuva.asgi:application",
            host="127.0.0.1",
            port=int(port),
            lifespan="off",
            log_level="warning",
            access_log=False,
            ws=os.environ.get("BENCH_UVICORN_WS", "websockets-sansio"),
            ws_per_message_deflate=getattr(settings, "DEVICE_WS_PER_MESSAGE_DEFLATE", True),  # --old checkouts lack it
            ws_ping_interval=None,  # as the Procfile (--ws-ping-interval 0): the device heartbeat pings
        )
    else:
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(["-b", "127.0.0.1", "-p", port, "-v", "0", "adiuva.asgi:application"])


if __name__ == "__main__":
    main()
