"""Tool-call round trip, as a ratio of a raw ``websockets`` echo round trip measured in the same run.

    .venv/bin/python bench/device_roundtrip.py [--n 2000] [--servers uvicorn,daphne] [--old PATH]

For each server: (1) from the socket's own process (a handler on the server's loop alternating one
raw echo round trip and one ``call_device``, so both see the same load), as a ratio of that echo,
with the CPU time the server's loop spends on each; (2) from a
separate process (how Celery workers and other web processes call devices), which alternates one
raw echo round trip and one ``call_device`` so both see the same machine load, and reports the
ratio of the two, with the caller loop's CPU per round trip and the holder process's CPU per call.
The device is the reference client (it runs a real SQLite ``get`` per call; before 2026-12-06's
fourth stop in a task of its own, since then in its read loop).

Beside these (added 2026-12-06; the figures above keep their meaning), the own-process handler
also times, in the same alternation, a round trip to a JSON echo server and a ``call_device`` to a
minimal device of the same user on the same server. Both peers do the same work per frame
(``answer_to``: parse the JSON, answer with a pre-built ``tool_result``; no store, no task), so
"minimal device / JSON echo" is the server's overhead alone; "minimal device / raw echo" is the
same call against the plain echo. The raw echo's peer parses nothing, the reference device parses,
runs SQLite (and before the fourth stop spawned a task per call): that difference is in the first
ratio and in neither of these.
Also measures the thread hop Channels 4.2+ adds before every handler (``aclose_old_connections``),
which the consumer skips.

``BENCH_PYINSTRUMENT=PATH`` / ``BENCH_PYINSTRUMENT_CALLER=PATH`` write a pyinstrument profile of
the server's loop during (1) / of the caller's loop during (2) to PATH.

``--old PATH`` measures the same on another checkout (``git worktree add /tmp/old <commit>``)
under this harness: server and caller processes import that checkout's code (ADIUVA_BENCH_CODE), and
since 2026-12-06's fourth stop so does the reference device (``reference_client``: its per-call work
is part of P1; before, both checkouts' servers met this checkout's client).

Figures of 2026-11-27 (2-core box, three other developers' test runs beside it; ratios are the
meaningful part), uvicorn, n=2000, see bench/RESULTS.md for the table. 2026-12-06,
after the node wire (node_wire.py) and the tool-call hot-path cuts, n=1000, three runs at load
9-16, medians: other process 3.9x (old 5.6x), own process 3.0x (old 2.5x, within the noise of an
echo measured before rather than beside the calls). Later on 2026-12-06 both paths alternate echo
and call in the calling loop (--rounds 5, old = 8ba86a3, two runs at load 7-9, medians): other
process 3.59x / 3.58x (old 3.79x / 3.86x), own process 1.78x / 1.81x (old 1.88x / 1.76x, unchanged);
CPU per call: caller 0.84x / 0.88x, holder 0.87x / 0.92x of old.
Then (metric observed inline, eager node handlers for tool calls; --rounds 5, old = 4f1e91d, two
runs at load 4.5 and 0.7-2.4, medians): other process 3.44x / 3.31x (old 3.54x / 3.37x), own process
1.74x / 1.73x (old 1.84x / 1.76x); the eager node alone: other process 3.08x vs 3.34x, holder CPU 0.93x.
Then (a caller remembers the holder's node for DEVICE_HOLDER_CACHE_SECONDS and sends a plain PUBLISH
instead of the locate script; node connections are asyncio protocols parsed in data_received; the
holder does not wait for its answer's PUBLISH reply; --rounds 5, old = 7361c05, two runs at load
4.6-8.2, medians): other process 3.04x / 3.00x (old 3.39x / 3.43x), daphne 3.48x / 3.25x (old 3.71x /
3.66x); CPU per call: caller 0.83x / 0.79x of old (1.63x / 1.66x its raw echo, old 1.98x / 2.01x),
holder 0.90x / 0.89x. Node connections alone (DEVICE_HOLDER_CACHE_SECONDS=0, 3 rounds): 3.15x vs 3.52x.
Then (own-process call path: one deadline timer per pending table, answers recognised before the
budget, named-tuple intake outcomes, hot settings kept; --rounds 5, old = 7361c05, uvicorn, two runs
at load 5-6 and 5-8.5, medians of the p50 ratios): own process, reference device 1.56x / 1.55x (old
1.66x / 1.64x); minimal device / JSON echo 1.13x / 1.10x (old 1.19x / 1.17x); minimal device / raw
echo 1.23x / 1.23x (old 1.29x / 1.30x); the server loop's CPU per call 1.69x its echo client's (old
1.78x). On an idle box 7361c05 measured 1.7x (reference device, 0.154 vs 0.090 ms).
Then (fourth stop: the reference client answers store calls in its read loop with orjson frames, the
own-process metric is tallied and written once a second; --rounds 5 --servers uvicorn, old = 129053e
with its own client, two runs at load 3.0-5.6 and 3.4-5.4, medians of the p50 ratios): own process,
reference device 1.29x / 1.31x (old 1.49x / 1.54x); minimal device / JSON echo 1.06x / 1.11x (old
1.14x / 1.14x); other process 2.84x / 2.65x (old 2.89x / 2.83x); the server loop's CPU per call 1.60x /
1.58x its echo client's (old 1.70x / 1.72x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from device_common import ROOT, free_port, make_users, percentile, setup_django, start_server, stop

CALL = {"type": "tool_call", "id": "0" * 32, "action": "get", "table": "tasks", "data": {"id": "x"}}
# The answer of a minimal device (and of the JSON echo server) to any tool_call: a `get` that found nothing.
RESULT = '{"type":"tool_result","id":"%s","row":null}'


def answer_to(text: str | bytes) -> str | None:
    """What a minimal device (and the JSON echo server, which does the same work) answers to a
    frame: a pre-built tool_result naming a tool_call's id, a pong to a ping; no store, no task."""
    frame = json.loads(text)
    kind = frame.get("type")
    if kind == "tool_call":
        return RESULT % frame["id"]
    return '{"type":"pong"}' if kind == "ping" else None


def start_echo_server() -> tuple[subprocess.Popen, int]:
    """A raw websockets echo server in its own process: the floor of any socket round trip."""
    port = free_port()
    code = (
        "import asyncio, websockets\n"
        "async def echo(ws):\n"
        "    async for m in ws: await ws.send(m)\n"
        "async def main():\n"
        f"    async with websockets.serve(echo, '127.0.0.1', {port}): await asyncio.Future()\n"
        "asyncio.run(main())\n"
    )
    return subprocess.Popen([sys.executable, "-c", code]), port


def start_json_echo_server() -> tuple[subprocess.Popen, int]:
    """A raw websockets server in its own process whose peer work is the minimal device's
    (``answer_to``: parse the frame, answer with a pre-built tool_result): the floor of a round trip
    whose peer reads and answers JSON."""
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / "device_roundtrip.py"), "--json-echo", str(port)]
    return subprocess.Popen(argv), port


async def serve_json_echo(port: int) -> None:
    import websockets

    async def answer(ws) -> None:
        async for text in ws:
            reply = answer_to(text)
            if reply is not None:
                await ws.send(reply)

    async with websockets.serve(answer, "127.0.0.1", port):
        await asyncio.Future()


async def minimal_device(port: int, token: str, device_id: str):
    """A device that answers each tool_call with a pre-built tool_result (``answer_to``) in its read
    loop: no store, no task per call (the reference client runs a SQLite ``get``). Returns
    the socket and its reading task."""
    import websockets

    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/api/v1/ws/device",
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=None,
        ping_interval=None,
    )
    await ws.send(json.dumps({"type": "device_hello", "device_id": device_id, "agent_ids": []}))

    async def serve() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in ws:
                reply = answer_to(text)
                if reply is not None:
                    await ws.send(reply)

    return ws, asyncio.create_task(serve())


async def connect_echo(port: int):
    import websockets

    for _ in range(100):
        try:
            return await websockets.connect(f"ws://127.0.0.1:{port}")
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("echo server did not start")


async def echo_once(ws, frame: str) -> float:
    start = time.perf_counter()
    await ws.send(frame)
    json.loads(await ws.recv())
    return time.perf_counter() - start


async def echo_baseline(port: int, n: int) -> list[float]:
    """Round trip of a tool_call-sized JSON frame to the raw echo server."""
    ws = await connect_echo(port)
    frame = json.dumps(CALL)
    samples = [await echo_once(ws, frame) for _ in range(n + 100)]
    await ws.close()
    return samples[100:]


async def thread_hop_cost(n: int) -> float:
    """Mean cost of channels' aclose_old_connections (a sync_to_async hop) in this process."""
    from channels.db import aclose_old_connections

    for _ in range(50):
        await aclose_old_connections()
    start = time.perf_counter()
    for _ in range(n):
        await aclose_old_connections()
    return (time.perf_counter() - start) / n


async def measure_server(
    kind: str, n: int, user_id: str, token: str, echo_ports: tuple[int, int], code: str | None
) -> dict:
    DeviceClient = reference_client(code)

    echo_port, json_echo_port = echo_ports
    port = free_port()
    env = {"ADIUVA_BENCH_CODE": code} if code else {}
    proc = start_server(kind, port, env=env)
    try:
        client = DeviceClient(f"ws://127.0.0.1:{port}/api/v1/ws/device", token, device_id=f"bench-{kind}")
        await client.connect()
        minimal, minimal_reader = await minimal_device(port, token, f"bench-min-{kind}")
        await asyncio.sleep(0.5)  # hellos recorded
        # (1) from the socket's own process, alternating raw echo, call_device, JSON echo and
        # call_device to the minimal device on the server's loop
        local: dict = {}
        message = f"roundtrip {n + 100} {echo_port} {json_echo_port} bench-min-{kind}"
        async for frame in client.home_request(message):
            if frame["type"] == "stream_text":
                local = json.loads(frame["chunk"])
            elif frame["type"] == "error":
                raise RuntimeError(frame)
        # (2) from another process, alternating raw echo and call_device
        caller = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "device_roundtrip.py"),
            "--caller",
            user_id,
            client.device_id,
            str(n + 100),
            str(echo_port),
            str(proc.pid),
            stdout=subprocess.PIPE,
            env={**os.environ, **env},
        )
        out, _ = await caller.communicate()
        remote = json.loads(out.decode().strip().splitlines()[-1])
        await client.close()
        await minimal.close()
        await minimal_reader
        return {
            "echo": local["echo"][100:],
            "local": local["call"][100:],
            "local_cpu": (local["call_cpu"], local["echo_cpu"]),
            "json_echo": local["json_echo"][100:],
            "local_min": local["call_min"][100:],
            "local_min_cpu": (local["call_min_cpu"], local["json_echo_cpu"]),
            "remote_echo": remote["echo"][100:],
            "remote": remote["call"][100:],
            "remote_cpu": (remote["call_cpu"], remote["echo_cpu"], remote["holder_cpu"]),
        }
    finally:
        stop(proc)


def reference_client(code: str | None) -> type:
    """The reference client's class from the checkout measured (``--old``): its per-call work is part
    of P1, so the old server is met by the old client (before 2026-12-06's last stop, by this one)."""
    if code is None:
        from apps.devices.client import DeviceClient

        return DeviceClient
    name = f"bench_client_{abs(hash(code))}"
    if name not in sys.modules:
        package = Path(code) / "apps" / "devices" / "client"
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].DeviceClient


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) process ``pid`` has used so far."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def remote_caller(user_id: str, device_id: str, n: int, echo_port: int, holder_pid: int) -> None:
    from apps.devices.services import call_device

    ws = await connect_echo(echo_port)
    frame = json.dumps(CALL)
    echo, calls = [], []
    echo_cpu = call_cpu = 0.0
    holder_start = process_cpu(holder_pid)
    profiler = None
    if os.environ.get("BENCH_PYINSTRUMENT_CALLER"):  # pyinstrument is not a requirement: install it to use this
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
    for _ in range(n):
        cpu = time.thread_time()
        echo.append(await echo_once(ws, frame))
        echo_cpu += time.thread_time() - cpu
        cpu, start = time.thread_time(), time.perf_counter()
        await call_device(user_id=user_id, device_id=device_id, action="get", table="tasks", data={"id": "x"})
        calls.append(time.perf_counter() - start)
        call_cpu += time.thread_time() - cpu
    holder_cpu = (process_cpu(holder_pid) - holder_start) / n
    if profiler is not None:
        profiler.stop()
        report = profiler.output_text(unicode=False, color=False, show_all=True)
        Path(os.environ["BENCH_PYINSTRUMENT_CALLER"]).write_text(report)  # noqa: ASYNC240 (after the timing)
    await ws.close()
    timings = {"echo": echo, "call": calls, "echo_cpu": echo_cpu / n, "call_cpu": call_cpu / n}
    print(json.dumps({**timings, "holder_cpu": holder_cpu}))


def fmt(samples: list[float], baseline: list[float], name: str = "echo") -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    b50, b99 = percentile(baseline, 50), percentile(baseline, 99)
    return (
        f"p50 {p50 * 1e3:7.3f} ms ({p50 / b50:5.1f}x {name} {b50 * 1e3:.3f})   "
        f"p99 {p99 * 1e3:7.3f} ms ({p99 / b99:5.1f}x {name} {b99 * 1e3:.3f})"
    )


def ratios(samples: list[float], baseline: list[float]) -> tuple[float, float]:
    return (
        percentile(samples, 50) / percentile(baseline, 50),
        percentile(samples, 99) / percentile(baseline, 99),
    )


async def main(args: argparse.Namespace, user_id: str, token: str) -> None:
    echo_proc, echo_port = start_echo_server()
    json_echo_proc, json_echo_port = start_json_echo_server()
    try:
        echo = await echo_baseline(echo_port, args.n)
        print(f"raw websockets echo: p50 {percentile(echo, 50) * 1e3:.3f} ms  p99 {percentile(echo, 99) * 1e3:.3f} ms")
        hop = await thread_hop_cost(2000)
        print(f"Channels' per-handler close_old_connections hop: {hop * 1e3:.3f} ms each")
        codes = [("new", None)] + ([("old", str(args.old))] if args.old else [])
        seen: dict[str, list[tuple[float, float]]] = {}
        cpu_seen: dict[str, list[float]] = {}  # the server loop's CPU per round trip, call / echo
        for round_no in range(args.rounds):
            for kind in args.servers.split(","):
                # Alternate which checkout goes first, so neither always meets the other's leftovers.
                for label, code in codes if round_no % 2 == 0 else codes[::-1]:
                    result = await measure_server(kind, args.n, user_id, token, (echo_port, json_echo_port), code)
                    name = f"{kind} {label}"
                    own = f"{name:12s} call_device, socket's own process :"
                    own_min = f"{name:12s} own process, minimal device / JSON echo :"
                    own_min_raw = f"{name:12s} own process, minimal device / raw echo  :"
                    other = f"{name:12s} call_device, other process        :"
                    prefix = f"[{round_no + 1}] " if args.rounds > 1 else ""
                    print(f"{prefix}{own} {fmt(result['local'], result['echo'])}", flush=True)
                    call_cpu, echo_cpu = result["local_cpu"]
                    print(
                        f"{prefix}{name:12s}   server loop CPU per round trip: call_device {call_cpu * 1e6:5.1f} us, "
                        f"raw echo client {echo_cpu * 1e6:5.1f} us",
                        flush=True,
                    )
                    print(f"{prefix}{own_min} {fmt(result['local_min'], result['json_echo'], 'JSON echo')}", flush=True)
                    call_cpu, echo_cpu = result["local_min_cpu"]
                    print(
                        f"{prefix}{name:12s}   server loop CPU per round trip: minimal device "
                        f"{call_cpu * 1e6:5.1f} us, JSON echo client {echo_cpu * 1e6:5.1f} us",
                        flush=True,
                    )
                    print(f"{prefix}{other} {fmt(result['remote'], result['remote_echo'])}", flush=True)
                    call_cpu, echo_cpu, holder_cpu = result["remote_cpu"]
                    print(
                        f"{prefix}{name:12s}   caller loop CPU per round trip: call_device {call_cpu * 1e6:5.1f} us, "
                        f"raw echo {echo_cpu * 1e6:5.1f} us; holder process CPU per call {holder_cpu * 1e6:5.1f} us",
                        flush=True,
                    )
                    seen.setdefault(own, []).append(ratios(result["local"], result["echo"]))
                    cpu_seen.setdefault(own, []).append(result["local_cpu"][0] / result["local_cpu"][1])
                    cpu_seen.setdefault(own_min, []).append(result["local_min_cpu"][0] / result["local_min_cpu"][1])
                    seen.setdefault(own_min, []).append(ratios(result["local_min"], result["json_echo"]))
                    seen.setdefault(own_min_raw, []).append(ratios(result["local_min"], result["echo"]))
                    seen.setdefault(other, []).append(ratios(result["remote"], result["remote_echo"]))
        if args.rounds > 1:
            print(f"medians of {args.rounds} rounds (ratio to the raw echo measured beside the calls):")
            for name, pairs in seen.items():
                p50 = statistics.median(pair[0] for pair in pairs)
                p99 = statistics.median(pair[1] for pair in pairs)
                print(f"    {name} p50 {p50:5.2f}x   p99 {p99:5.2f}x")
            print("medians of the server loop's CPU per round trip, call / its echo client's:")
            for name, values in cpu_seen.items():
                print(f"    {name} {statistics.median(values):5.2f}x")
    finally:
        for proc in (echo_proc, json_echo_proc):
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--json-echo":
        asyncio.run(serve_json_echo(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--caller":
        setup_django()
        asyncio.run(remote_caller(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])))
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("--n", type=int, default=2000)
        parser.add_argument("--servers", default="uvicorn,daphne")
        parser.add_argument("--rounds", type=int, default=1, help="repeat, alternating checkouts; print medians")
        parser.add_argument("--old", help="another checkout to measure beside this one (e.g. a worktree of main~1)")
        setup_django(migrate=True)
        [(uid, access)] = make_users(1, prefix="roundtrip")
        asyncio.run(main(parser.parse_args(), uid, access))
