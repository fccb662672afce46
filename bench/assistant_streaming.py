"""Assistant streaming: scripted model → ChatOpenAI → LangGraph → sanitizer → socket → device, as
ratios of the same tokens sent by a raw websockets server in the same run.

    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/assistant_streaming.py \
        [--runs 3] [--tokens 2000] [--latency-tokens 200] [--paces 2,20] [--stack-root PATH] [--compare PATH]
        [--profile OUT.html]

Three processes besides this one, so no part steals another's interpreter: the scripted
OpenAI-compatible model (an outside service in production), the stack (uvicorn serving
``adiuva.asgi`` of ``--stack-root``, bench/assistant_stack_server.py) and the raw server (a bare
websockets server writing the same ``stream_text`` frames). This process is the device for both,
with the same bare websockets client, so the client's cost is the same on both sides.

Figures (each path measured in the same run):
* throughput: ``--tokens`` five-character tokens written as fast as the model can; tokens per
  second while streaming (first to last text received) and end to end (request sent to last
  text, including the stack's budget hold, memory lookup and time to first text: the goal is
  >= 0.5x raw), frames per second (the stack merges tokens into one frame while the socket is
  busy), when the request reached the model ("model asked at": after the stack's budget hold,
  memory lookup, graph start and model request; the raw server: at once) and when it wrote its
  first token, the rate the model wrote at (it writes no faster than the stack reads), the
  server process's CPU per answer (mean: /proc counts 10 ms ticks), and end to end per position
  in the round;
* last text to stream_end: 20-token answers, the work after the answer, with the CPU a turn;
* latency: ``--latency-tokens`` tokens written ``--paces`` ms apart; for every token, the time
  from the model (or raw server) writing it to the device holding it, pooled over the runs; p50
  and p95 of both paths and the stack's added latency at each percentile.
Timestamps of all processes are ``time.perf_counter()`` (CLOCK_MONOTONIC: one clock per machine).

Order and warm-up: before each plan every path answers once unmeasured at the plan's size (a
stack's first full-speed answer of a size streamed ~4x slower than its next ones: that was the
"slot measured first streams slower" effect of earlier runs), then round r starts with the r-th
path, so with ``--runs`` a multiple of the paths each one takes every position equally often;
end to end is printed per position so what is left of an order effect shows. Even so, two
checkouts of the same commit (``--stack-root A --compare B``) measured 0.42 and 0.42x, then 0.62
and 0.46x end to end on the loaded shared box: read end-to-end differences over several runs,
and prefer "model asked at", first text, last text to stream_end and the CPU per turn, which
move far less.

The previous code: check it out beside this one and pass it as ``--compare`` (its stack is
started too and measured interleaved with this one and the raw server, run by run, so all three
meet the same load on a shared machine) or as ``--stack-root`` alone. This file's model server,
raw server and client serve both, so only the stack differs. The "old" figures in bench/RESULTS.md
came from the commit before the realtime work (fixed hold-back sanitizer, no frame streams)::

    git worktree add --detach /tmp/old 1310eee
    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/assistant_streaming.py --compare /tmp/old

``--profile OUT.html`` runs the stack's server process under pyinstrument (OUT.txt too).

Last figures (2026-12-06, third stop, load 1.7-6.8 on the shared 2-core box, nine runs of
``--runs 3 --compare`` a worktree of ``7361c05``, two of them with the slots swapped; medians of the
runs): end to end 0.54x raw (per run 0.17-0.78; compared 0.50x, 0.21-0.74; new / old per run
0.63-1.99, median 1.14: mostly within this bench's noise), the model asked at 13.1 ms (compared
22.2 ms; per run 0.33-0.84x, median 0.61x), first text 27 ms (compared 32 ms; per run median
0.66x), last text to stream_end p50 4.9 ms (compared 9.3 ms; per run median 0.61x), server CPU per
20-token answer 11.3 ms against 15.3 ms (seven runs). bench/RESULTS.md has the details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "word "
MESSAGE = re.compile(r"bench tag=(\w+) n=(\d+) pace=([\d.]+)")


# --- the scripted model (a process of its own) --------------------------------------------


def serve_model() -> None:
    """The scripted model: answers ``bench tag=T n=N pace=P`` with N tokens, P seconds apart, and
    prints ``{"tag", "written", "asked"}`` (when each token was written, when the request came) once
    they are all out."""
    sys.path.insert(0, str(ROOT))
    from apps.assistant.testing.scripted_openai import RecordedRequest, Reply, ScriptedOpenAI

    out_lock = threading.Lock()

    class Written(list):
        def __init__(self, tag: str, n: int) -> None:
            super().__init__()
            self.tag, self.n = tag, n
            self.asked = time.perf_counter()  # the request reached the model (its body read)

        def append(self, value: float) -> None:
            super().append(value)
            if len(self) == self.n:
                with out_lock:
                    print(json.dumps({"tag": self.tag, "written": list(self), "asked": self.asked}), flush=True)

    def reply(body: dict) -> Reply:
        found = MESSAGE.search(RecordedRequest(path="", body=body).last_user_text)
        if found is None:
            return Reply(text="ok")
        tag, n, pace = found.group(1), int(found.group(2)), float(found.group(3))
        return Reply(text=TOKEN * n, chunk_size=len(TOKEN), chunk_delay=pace, written_at=Written(tag, n))

    server = ScriptedOpenAI()
    server.fallback = reply
    print(json.dumps({"base_url": server.base_url}), flush=True)
    server._server.serve_forever()


class ModelProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-model"], stdout=subprocess.PIPE, text=True, cwd=str(ROOT)
        )
        assert self.proc.stdout is not None  # stdout=PIPE
        self.base_url = json.loads(self.proc.stdout.readline())["base_url"]
        self.written: dict[str, dict] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None  # stdout=PIPE
        for line in self.proc.stdout:
            record = json.loads(line)
            with self.cond:
                self.written[record["tag"]] = record
                self.cond.notify_all()

    def written_for(self, tag: str) -> dict:
        """``{"written": [when each token was written], "asked": when the request arrived}``."""
        with self.cond:
            if not self.cond.wait_for(lambda: tag in self.written, timeout=30):
                raise RuntimeError("the model never reported its write times")
            return self.written.pop(tag)


# --- the raw server (a process of its own) -------------------------------------------------


def serve_raw(port: int) -> None:
    """Writes ``n`` stream_text frames per request; stream_end carries when each was written."""
    import websockets

    async def handler(ws) -> None:
        async for message in ws:
            request = json.loads(message)
            if request.get("type") != "home_request":
                continue
            found = MESSAGE.search(request["message"])
            assert found is not None  # the bench sends every message in this shape
            n, pace = found.group(2, 3)
            written: list[float] = []
            rid = request["request_id"]
            await ws.send(json.dumps({"type": "stream_start", "request_id": rid}))
            for _ in range(int(n)):
                await ws.send(json.dumps({"type": "stream_text", "request_id": rid, "chunk": TOKEN}))
                written.append(time.perf_counter())
                if float(pace):
                    await asyncio.sleep(float(pace))
            await ws.send(json.dumps({"type": "stream_end", "request_id": rid, "mutations": [], "written": written}))

    async def main():
        async with websockets.serve(handler, "127.0.0.1", port, max_size=None):
            print("ready", flush=True)
            await asyncio.Future()

    asyncio.run(main())


# --- the device (this process) -------------------------------------------------------------


class Device:
    """A bare websockets device: one request at a time, pings answered, frames timed on arrival.
    Between its requests (while the other paths are measured) a task answers the server's pings."""

    def __init__(self, url: str, pid: int, token: str | None = None) -> None:
        self.url, self.pid, self.token = url, pid, token
        self.idle: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import websockets

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.ws = await websockets.connect(self.url, additional_headers=headers, max_size=None, ping_interval=None)
        if self.token:
            hello = {"type": "device_hello", "device_id": "asstbench-device", "agent_ids": []}
            await self.ws.send(json.dumps(hello))
            await asyncio.sleep(0.5)  # the hello is recorded
        self.idle = asyncio.ensure_future(self._pongs())

    async def _pongs(self) -> None:
        """While idle: pings answered, anything else (nothing is asked) dropped."""
        while True:
            if json.loads(await self.ws.recv()).get("type") == "ping":
                await self.ws.send('{"type": "pong"}')

    async def _pongs_stop(self) -> None:
        if self.idle is not None:
            self.idle.cancel()  # websockets' recv() may be cancelled without losing a frame
            with contextlib.suppress(asyncio.CancelledError):
                await self.idle
            self.idle = None

    async def request(self, message: str) -> tuple[float, list[tuple[float, int]], dict, float]:
        """(sent at, [(arrival, cumulative chars held)], stream_end frame, its arrival)."""
        await self._pongs_stop()
        try:
            return await self._request(message)
        finally:
            self.idle = asyncio.ensure_future(self._pongs())

    async def _request(self, message: str) -> tuple[float, list[tuple[float, int]], dict, float]:
        request_id = uuid.uuid4().hex
        arrivals: list[tuple[float, int]] = []
        held = 0
        start = time.perf_counter()
        await self.ws.send(json.dumps({"type": "home_request", "request_id": request_id, "message": message}))
        while True:
            raw = await self.ws.recv()
            now = time.perf_counter()
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "ping":
                await self.ws.send('{"type": "pong"}')
            elif frame.get("request_id") != request_id:
                continue
            elif kind == "stream_text":
                held += len(frame["chunk"])
                arrivals.append((now, held))
            elif kind == "error":
                raise RuntimeError(frame)
            elif kind == "stream_end":
                return start, arrivals, frame, now

    async def close(self) -> None:
        await self._pongs_stop()
        await self.ws.close()


def token_latencies(written: list[float], arrivals: list[tuple[float, int]]) -> list[float]:
    """Per token: arrival of the frame that completed it minus when it was written."""
    if not arrivals or arrivals[-1][1] != len(written) * len(TOKEN):
        raise RuntimeError("the whole text did not arrive")
    latencies, j = [], 0
    for i, wrote in enumerate(written):
        while arrivals[j][1] < (i + 1) * len(TOKEN):
            j += 1
        latencies.append(arrivals[j][0] - wrote)
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process ``pid`` has used so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(device: Device, model: ModelProcess | None, n: int, pace: float) -> dict:
    tag = uuid.uuid4().hex
    cpu = cpu_seconds(device.pid)
    start, arrivals, end, ended = await device.request(f"bench tag={tag} n={n} pace={pace}")
    cpu = cpu_seconds(device.pid) - cpu
    record = {"written": end["written"], "asked": start} if model is None else model.written_for(tag)
    written = record["written"]
    first, last = arrivals[0][0], arrivals[-1][0]
    return {
        "latencies": token_latencies(written, arrivals),
        "streaming_tokens_per_s": (n - 1) / max(last - first, 1e-9),
        "end_to_end_tokens_per_s": n / (last - start),
        "frames_per_s": (len(arrivals) - 1) / max(last - first, 1e-9),
        "frames": len(arrivals),
        "first_text_ms": (first - start) * 1000,
        "first_write_ms": (written[0] - start) * 1000,
        "model_asked_ms": (record["asked"] - start) * 1000,
        "written_tokens_per_s": (n - 1) / max(written[-1] - written[0], 1e-9),
        "last_text_to_end_ms": (ended - last) * 1000,
        "server_cpu_ms": cpu * 1000,
    }


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def mean_of(runs: list[dict], key: str) -> float:
    """For the CPU times, counted in clock ticks (10 ms here): a median would only ever show a tick."""
    return statistics.fmean(r[key] for r in runs)


def positions(runs: list[dict], key: str) -> list[tuple[int, float | None]]:
    """The median of ``key`` at each position in the round the path was measured at."""
    count = max(r["position"] for r in runs) + 1
    found = {p: [r[key] for r in runs if r["position"] == p] for p in range(count)}
    return [(p, statistics.median(v) if v else None) for p, v in found.items()]


# --- orchestration ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}") from None
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


class Stack(NamedTuple):
    """One checkout's stack server process, as the device reaches it."""

    label: str
    root: str
    proc: subprocess.Popen
    port: int
    token: str


def start_stack(label: str, root: str, model: ModelProcess, log, profile: str | None) -> Stack:
    port = free_port()
    database = "adiuva_asstbench_" + hashlib.sha256(root.encode()).hexdigest()[:8]  # each checkout migrates its own
    command = [sys.executable, str(ROOT / "bench" / "assistant_stack_server.py"), root, str(port), database]
    command += [model.base_url] + (["--profile", str(Path(profile).resolve())] if profile else [])
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=root)
    assert proc.stdout is not None  # stdout=PIPE
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the {label} stack server failed to start (see {log.name})")
    wait_for_port(port, proc)
    return Stack(label, root, proc, port, json.loads(line)["token"])


async def interleaved(devices: dict[str, Device], model: ModelProcess, rounds: int, n: int, pace: float) -> dict:
    """``rounds`` rounds of one answer per path, so every path meets the same load on a shared machine.
    Each path first answers once unmeasured, at full speed (a stack's first answer of this size streamed
    about 4x slower than its next ones). Round r starts with the r-th path (the order rotates), so each
    takes every position equally often (``rounds`` a multiple of the paths) and each result keeps its
    ``position`` (0 = first in its round): an order effect shows in the report and cancels in the median."""
    names = list(devices)
    for name in names:  # discarded: a stack's first answer of a size streams several times slower
        await one_run(devices[name], None if name == "raw" else model, n, 0.0)
    sides: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for position, name in enumerate(order):
            result = await one_run(devices[name], None if name == "raw" else model, n, pace)
            sides[name].append({**result, "position": position})
    return sides


async def measure(args, stacks: list[Stack], raw_port: int, raw_pid: int, model: ModelProcess) -> dict:
    devices = {s.label: Device(f"ws://127.0.0.1:{s.port}/api/v1/ws/device", s.proc.pid, s.token) for s in stacks}
    devices["raw"] = Device(f"ws://127.0.0.1:{raw_port}", raw_pid)
    for device in devices.values():
        await device.connect()
    plans = [("throughput", args.tokens, 0.0)] + [
        (f"latency {pace:g} ms", args.latency_tokens, pace / 1000) for pace in args.paces
    ]
    for stack in stacks:
        for _ in range(2):  # warm-up: graph compile, connections, caches
            await one_run(devices[stack.label], model, 20, 0.0)
    results: dict[str, dict[str, list[dict]]] = {}
    for label, n, pace in plans:
        results[label] = await interleaved(devices, model, args.runs, n, pace)
    # Short answers, many of them: the time from the last text to stream_end is the work after the
    # answer (records, the hold's release, the usage notice, the episode) and nothing of the model's.
    results["ends"] = await interleaved(devices, model, args.runs * 5, 20, 0.0)
    for device in devices.values():
        await device.close()
    return results


def report(args, stacks: list[Stack], results: dict) -> None:
    lines = [f"assistant streaming, median / pooled over {args.runs} interleaved runs"]
    lines += [f"  {s.label}: {s.root}" for s in stacks]
    names = [s.label for s in stacks] + ["raw"]
    width = max(len(n) for n in names)
    throughput = results["throughput"]
    raw = throughput["raw"]
    lines.append(f"throughput ({args.tokens} tokens of {len(TOKEN)} chars, written as fast as the model can):")
    for name in names:
        runs = throughput[name]
        lines.append(
            f"  {name:{width}}: {median_of(runs, 'streaming_tokens_per_s'):7.0f} tokens/s streaming, "
            f"{median_of(runs, 'end_to_end_tokens_per_s'):7.0f} end to end, "
            f"{median_of(runs, 'frames_per_s'):7.0f} frames/s ({median_of(runs, 'frames'):.0f} frames), "
            f"first text {median_of(runs, 'first_text_ms'):.1f} ms "
            f"(model asked at {median_of(runs, 'model_asked_ms'):.1f} ms, "
            f"first token written at {median_of(runs, 'first_write_ms'):.1f} ms), "
            f"last text to stream_end {median_of(runs, 'last_text_to_end_ms'):.1f} ms; "
            f"written at {median_of(runs, 'written_tokens_per_s'):7.0f} tokens/s; "
            f"server CPU {mean_of(runs, 'server_cpu_ms'):.1f} ms (mean)"
        )
    for name in names[:-1]:
        ratios = [
            median_of(throughput[name], key) / median_of(raw, key)
            for key in ("streaming_tokens_per_s", "end_to_end_tokens_per_s")
        ]
        lines.append(f"  {name:{width}} / raw tokens/s: streaming {ratios[0]:.3f}, end to end {ratios[1]:.3f}")
    lines.append("  end to end tokens/s by position in the round (1 = measured first; median where several):")
    for name in names:
        by_position = positions(throughput[name], "end_to_end_tokens_per_s")
        cells = "  ".join(f"{p + 1}: {v:7.0f}" if v is not None else f"{p + 1}: {'-':>7}" for p, v in by_position)
        lines.append(f"    {name:{width}}: {cells}")
    ends = results["ends"]
    lines.append(f"last text to stream_end ({len(ends['raw'])} interleaved answers of 20 tokens each):")
    for name in names:
        times = sorted(run["last_text_to_end_ms"] for run in ends[name])
        p50, p90 = percentile(times, 50), percentile(times, 90)
        cpu = mean_of(ends[name], "server_cpu_ms")
        lines.append(
            f"  {name:{width}}: p50 {p50:7.2f} ms  p90 {p90:7.2f} ms  max {times[-1]:7.2f} ms  "
            f"(server CPU {cpu:.1f} ms a turn, mean)"
        )
    for label, sides in results.items():
        if label in ("throughput", "ends"):
            continue
        lines.append(f"{label} pacing ({args.latency_tokens} tokens), latency per token model → device:")
        pooled = {name: [x for run in runs for x in run["latencies"]] for name, runs in sides.items()}
        for name in names:
            p50, p95, top = (
                x * 1000 for x in (percentile(pooled[name], 50), percentile(pooled[name], 95), max(pooled[name]))
            )
            frames = median_of(sides[name], "frames")
            lines.append(
                f"  {name:{width}}: p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  max {top:7.2f} ms  ({frames:.0f} frames)"
            )
        for name in names[:-1]:
            added = [(percentile(pooled[name], p) - percentile(pooled["raw"], p)) * 1000 for p in (50, 95)]
            lines.append(f"  added by {name}: p50 {added[0]:.2f} ms, p95 {added[1]:.2f} ms")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000, help="tokens of the throughput runs")
    parser.add_argument("--latency-tokens", type=int, default=200, help="tokens of each paced run")
    parser.add_argument("--paces", default="2,20", help="comma-separated token spacing in ms for the latency runs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stack-root", default=str(ROOT), help="the checkout whose stack is measured")
    parser.add_argument("--compare", help="a second checkout (e.g. the previous code), measured interleaved")
    parser.add_argument("--profile", help="write a pyinstrument report of the --stack-root stack process here")
    parser.add_argument("--serve-model", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-raw", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_model:
        serve_model()
        return
    if args.serve_raw:
        serve_raw(args.serve_raw)
        return
    args.paces = [float(p) for p in args.paces.split(",")]
    os.environ.setdefault("ADIUVA_TEST_RUN", "asstbench")

    model = ModelProcess()
    raw_port = free_port()
    raw_proc = subprocess.Popen([sys.executable, __file__, "--serve-raw", str(raw_port)], stdout=subprocess.PIPE)
    log_path = ROOT / ".data" / "assistant_streaming_stack.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")  # the stacks' own log lines, kept out of the report
    stacks: list[Stack] = []
    try:
        stacks.append(start_stack("stack", str(Path(args.stack_root).resolve()), model, log, args.profile))
        if args.compare:
            stacks.append(start_stack("compared", str(Path(args.compare).resolve()), model, log, None))
        assert raw_proc.stdout is not None  # stdout=PIPE
        raw_proc.stdout.readline()
        results = asyncio.run(measure(args, stacks, raw_port, raw_proc.pid, model))
    finally:
        for proc in [s.proc for s in stacks] + [raw_proc, model.proc]:
            stop(proc)
        log.close()
    report(args, stacks, results)


if __name__ == "__main__":
    main()
