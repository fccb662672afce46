"""The reference device client under a slow store call: how long a ping waits for its pong while a
``vector_search`` over a large store runs, and what cheap calls (``get``) and small ``select``s cost
per round trip; this checkout against another one, interleaved.

    .venv/bin/python bench/client_slow_store_call.py [--vectors 1000] [--dim 1536] [--rounds 4] [--old PATH]

No server of ours and no Django: a ``websockets`` server in the same process plays the server (one
loop, as the tests run it), the client is the checkout's ``DeviceClient`` on an in-memory
``LocalStore`` of ``--vectors`` vectors of ``--dim`` floats and 2,000 tasks. Measured per round:

- pong: the server sends ``vector_search`` then ``ping``; milliseconds from the ping to its pong, and
  from the search to its answer (a client that runs the search in its read loop answers the ping
  only after it);
- get: µs per ``get`` round trip, one call at a time (the read loop's fast path);
- select: µs per ``select`` of 20 rows round trip, one at a time (a worker thread in the new client).

Each round runs every checkout in a process of its own (ADIUVA_BENCH_CODE), alternating which goes
first; the medians close the output.

2026-12-06, fifth stop, 6 rounds against ec5c4bc at load 3.1-3.9 (1,000 vectors of 1,536 floats):
the pong during the search 473 -> 2.7 ms (medians); the search itself 475 -> 473 ms (1.00x); get
119 -> 108 us (0.91x), select of 20 rows 638 -> 608 us (0.95x) per round trip (both noise at that
load: per round the get moved 78-279 us).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def measure(vectors: int, dim: int) -> dict[str, float]:
    import websockets

    from apps.devices.client import DeviceClient, LocalStore

    store = LocalStore()
    rng = random.Random(7)
    for i in range(vectors):
        call = {"action": "vector_upsert", "data": {"id": f"v{i}"}, "vector": [rng.random() for _ in range(dim)]}
        store.execute(call)
    for i in range(2000):
        store.execute({"action": "insert", "table": "tasks", "data": {"id": f"t{i}", "title": f"task {i}"}})
    query = [rng.random() for _ in range(dim)]
    out: dict[str, float] = {}

    async def serve(ws):
        await ws.recv()  # the hello
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "tool_call", "id": "s", "action": "vector_search", "vector": query}))
        pinged = time.perf_counter()
        await ws.send(json.dumps({"type": "ping"}))
        for _ in range(2):
            frame = json.loads(await ws.recv())
            if frame["type"] == "pong":
                out["pong_ms"] = (time.perf_counter() - pinged) * 1000
            else:
                out["search_ms"] = (time.perf_counter() - started) * 1000
        for action, n, call in (
            ("get", 2000, {"action": "get", "table": "tasks", "data": {"id": "t5"}}),
            ("select", 300, {"action": "select", "table": "tasks", "limit": 20}),
        ):
            started = time.perf_counter()
            for i in range(n):
                await ws.send(json.dumps({"type": "tool_call", "id": f"{action}{i}", **call}))
                await ws.recv()
            out[f"{action}_us"] = (time.perf_counter() - started) / n * 1e6

    async with websockets.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = DeviceClient(f"ws://127.0.0.1:{port}/api/v1/ws/device", "token", store=store)
        await client.connect()
        await asyncio.wait_for(client.run_forever(), timeout=600)
    return out


def child(vectors: int, dim: int) -> None:
    sys.path.insert(0, os.environ.get("ADIUVA_BENCH_CODE") or str(ROOT))
    print(json.dumps(asyncio.run(measure(vectors, dim))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--old", help="another checkout to measure beside this one")
    args = parser.parse_args()
    codes = [("new", str(ROOT))] + ([("old", args.old)] if args.old else [])
    seen: dict[str, list[dict[str, float]]] = {label: [] for label, _ in codes}
    for round_no in range(args.rounds):
        for label, code in codes if round_no % 2 == 0 else codes[::-1]:
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(args.vectors), str(args.dim)],
                env={**os.environ, "ADIUVA_BENCH_CODE": code},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            one = json.loads(result.strip().splitlines()[-1])
            seen[label].append(one)
            print(
                f"[{round_no + 1}] {label}: pong {one['pong_ms']:8.1f} ms, search {one['search_ms']:7.1f} ms;"
                f" get {one['get_us']:6.1f} us, select {one['select_us']:6.1f} us per round trip",
                flush=True,
            )
    for key in ("pong_ms", "search_ms", "get_us", "select_us"):
        medians = {label: statistics.median(r[key] for r in rounds) for label, rounds in seen.items()}
        line = ", ".join(f"{label} {value:.1f}" for label, value in medians.items())
        if "old" in medians:
            line += f"; new / old {medians['new'] / medians['old']:.2f}x"
        print(f"medians {key}: {line}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
