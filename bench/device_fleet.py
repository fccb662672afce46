"""Idle fleet: N connected devices with heartbeats; server RSS per connection and idle CPU, against a raw server.

    .venv/bin/python bench/device_fleet.py [--devices 2000] [--users 200] [--idle 65] [--servers raw,uvicorn,daphne]
    .venv/bin/python bench/device_fleet.py --devices 2000 --servers uvicorn --tracemalloc   # where the memory goes
    .venv/bin/python bench/device_fleet.py --devices 2000 --deflate off --old /tmp/old   # before → after

Devices are reference clients (hello, pongs) spread over client processes; the server runs with the
production heartbeat (ping 30 s, presence flush 60 s) and, as the Procfile, without uvicorn's own
WebSocket keepalive ping, so the idle window sees the app's pings, pongs and presence writes.
``raw`` is a bare ``websockets`` server holding the same sockets with the same heartbeat (a ``ping``
frame every 30 s, a ``pong`` expected within 10 s, one timer for all sockets) and the same
permessage-deflate (``--deflate``, on by default as in production): the floor the project's server
is compared with, in the same run. For the project's servers the bench waits until every device is
online in the presence index before it measures. Baseline of each server: its own RSS and CPU with
no device connected. Then every client process is killed at once (a disconnect storm) and the
server's log is read for ``--drain`` seconds: failed presence withdrawals and failed node heartbeats
are counted.

``--old PATH`` measures another checkout's uvicorn server too (``git worktree add /tmp/old <commit>``),
right after this one's, in the same run: ``uvicorn-old`` in the output.

Last measured (2026-12-06, load 5-9, ``--deflate off``): 29.8 KB per connection against 15.4 KB for
the raw server (1.94x; ``8ba86a3`` 30.8 KB, 2.01x), idle CPU 0.5-1.3 % of a core (raw 0.23-0.37 %);
``--deflate on``: 69.5 KB against 55.0 KB (1.26x).

``--tracemalloc`` traces the server's allocations (slower, more memory: not for the figures) and
prints, by allocation site, what the connected fleet added, per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from device_common import ROOT, free_port, make_users, setup_django, start_server, start_server_command, stop


async def client_process(url: str, tokens: list[str], per_user: int, ready_file: str) -> None:
    from apps.devices.client import DeviceClient, LocalStore

    store = LocalStore()
    clients = []
    for i, token in enumerate(tokens):
        for j in range(per_user):
            client = DeviceClient(url, token, device_id=f"fleet-{os.getpid()}-{i}-{j}", store=store)
            for attempt in range(5):
                try:
                    await client.connect()
                    break
                except OSError:
                    await asyncio.sleep(0.5 * (attempt + 1))
            clients.append(client)
    Path(ready_file).write_text(str(len(clients)))  # noqa: ASYNC240  (once, after the timing-free connect)
    await asyncio.Future()  # serve pings until killed


PING_INTERVAL = 30.0
PONG_TIMEOUT = 10.0


async def raw_server(port: int, *, deflate: bool) -> None:
    """A bare ``websockets`` server: keeps each socket, answers a client's ping, and pings every
    socket every PING_INTERVAL from one timer, closing (4410) those with no pong after PONG_TIMEOUT."""
    from websockets.asyncio.server import ServerConnection, serve

    awaiting_pong: dict[ServerConnection, float] = {}
    held: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        held.add(ws)
        try:
            async for message in ws:
                kind = json.loads(message).get("type")
                if kind == "pong":
                    awaiting_pong.pop(ws, None)
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
        finally:
            held.discard(ws)
            awaiting_pong.pop(ws, None)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for ws, deadline in list(awaiting_pong.items()):
                if now >= deadline:
                    del awaiting_pong[ws]
                    await ws.close(4410)
            if now >= next_ping[0]:
                next_ping[0] = now + PING_INTERVAL
                for ws in list(held):
                    awaiting_pong.setdefault(ws, now + PONG_TIMEOUT)
                    await ws.send('{"type":"ping"}')

    next_ping = [time.monotonic() + PING_INTERVAL]
    compression = "deflate" if deflate else None
    async with serve(handler, "127.0.0.1", port, ping_interval=None, max_size=None, compression=compression):
        await heartbeat()


def raise_open_files_limit(n_devices: int) -> None:
    """Each socket is a file descriptor in the server and in a client process: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = n_devices + 1024
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise SystemExit(f"{n_devices} devices need {wanted} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def online_in_presence(users: list[tuple[str, str]]) -> int:
    from apps.devices.selectors import devices_online

    return len(devices_online(user_ids=[user_id for user_id, _ in users]))


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(
    kind: str,
    n_devices: int,
    idle: float,
    users: list[tuple[str, str]],
    *,
    drain: float,
    storm: dict,
    trace: str | None = None,
    deflate: str = "on",
    code: str | None = None,
) -> dict:
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (read and closed after the storm, in finally)
    env = {
        "DEVICE_PING_INTERVAL": str(PING_INTERVAL),
        "DEVICE_PONG_TIMEOUT": str(PONG_TIMEOUT),
        "DEVICE_PRESENCE_FLUSH_INTERVAL": "60",
        "DEVICE_WS_PER_MESSAGE_DEFLATE": "true" if deflate == "on" else "false",
    }
    if trace:
        env["BENCH_TRACEMALLOC"] = trace
    if code:
        env["ADIUVA_BENCH_CODE"] = code
    if kind == "raw":
        server = start_server_command(
            [str(ROOT / "bench" / "device_fleet.py"), "--raw-server", str(port), deflate], port, output=log
        )
    else:
        server = start_server(kind, port, env=env, output=log)
    ps = psutil.Process(server.pid)
    clients = []
    try:
        time.sleep(2)
        if trace:
            os.kill(server.pid, signal.SIGUSR1)
            time.sleep(2)
        rss0 = ps.memory_info().rss
        c0 = cpu_seconds(ps)
        time.sleep(10)
        empty_cpu = (cpu_seconds(ps) - c0) / 10
        per_user = max(1, n_devices // len(users))
        n_procs = 4
        chunk = len(users) // n_procs
        url = f"ws://127.0.0.1:{port}/api/v1/ws/device"
        ready = []
        start = time.monotonic()
        for p in range(n_procs):
            ready_file = f"/tmp/adiuva-fleet-{os.getpid()}-{p}"
            if os.path.exists(ready_file):
                os.remove(ready_file)
            ready.append(ready_file)
            tokens = [t for _, t in users[p * chunk : (p + 1) * chunk]]
            clients.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "device_fleet.py"),
                        "--client",
                        url,
                        ready_file,
                        str(per_user),
                        *tokens,
                    ],
                    cwd=str(ROOT),
                )
            )
        while not all(os.path.exists(f) for f in ready):
            if time.monotonic() - start > 300 + n_devices * 0.1:  # a loaded machine connects slowly
                raise RuntimeError("fleet did not connect")
            time.sleep(0.5)
        connected = sum(int(Path(f).read_text()) for f in ready)
        connect_time = time.monotonic() - start
        online = None
        if kind != "raw":  # every hello answered: the device is in the presence index
            online = online_in_presence(users)
            while online < connected and time.monotonic() - start < 900:
                time.sleep(1)
                online = online_in_presence(users)
        online_time = time.monotonic() - start
        time.sleep(5)
        if trace:
            os.kill(server.pid, signal.SIGUSR1)
            time.sleep(5 + n_devices / 500)  # the snapshot of a traced fleet takes a while
        rss1 = ps.memory_info().rss
        c1 = cpu_seconds(ps)
        time.sleep(idle)
        idle_cpu = (cpu_seconds(ps) - c1) / idle
        rss2 = ps.memory_info().rss
        return {
            "connected": connected,
            "connect_s": connect_time,
            "online": online,
            "online_s": online_time,
            "rss_empty_mb": rss0 / 2**20,
            "rss_fleet_mb": max(rss1, rss2) / 2**20,
            "rss_per_conn_kb": (max(rss1, rss2) - rss0) / connected / 1024,
            "cpu_empty": empty_cpu,
            "cpu_idle": idle_cpu,
        }
    finally:
        for c in clients:
            c.kill()
        time.sleep(drain)  # the server tears the sockets down
        stop(server)
        log.seek(0)
        text = log.read()
        log.close()
        storm["withdraw_failed"] = text.count("could not withdraw presence")
        storm["heartbeat_failed"] = text.count("node heartbeat failed")
        storm["max_connections"] = text.count("MaxConnectionsError")


def print_allocations(trace: str, connected: int, top: int = 30) -> None:
    """What the fleet added to the server's heap, by allocation site, per connection."""
    import tracemalloc

    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    before = tracemalloc.Snapshot.load(f"{trace}.0").filter_traces(ignore)
    after = tracemalloc.Snapshot.load(f"{trace}.1").filter_traces(ignore)
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"traced heap added by {connected} connections: {total / connected / 1024:.1f} KiB per connection")
    print("by line (KiB per connection, blocks per connection):")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        print(
            f"  {stat.size_diff / connected / 1024:7.2f} KiB {stat.count_diff / connected:6.1f}  "
            f"{frame.filename.replace(str(ROOT), '.')}:{frame.lineno}"
        )
    print("by call chain (innermost 8 frames):")
    for stat in after.compare_to(before, "traceback")[: top // 2]:
        print(f"  {stat.size_diff / connected / 1024:7.2f} KiB {stat.count_diff / connected:6.1f}")
        for frame in list(stat.traceback)[-8:]:
            print(f"        {frame.filename.replace(str(ROOT), '.')}:{frame.lineno}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--idle", type=float, default=65.0)
    parser.add_argument("--servers", default="raw,uvicorn")
    parser.add_argument("--drain", type=float, default=15.0)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--deflate", choices=["on", "off"], default="on", help="permessage-deflate, both servers")
    parser.add_argument("--old", help="another checkout whose uvicorn server is measured too (before → after)")
    args = parser.parse_args()
    raise_open_files_limit(args.devices)
    setup_django(migrate=True)
    users = make_users(args.users, prefix="fleet")
    print(
        f"fleet: {args.devices} devices over {args.users} users, ping {PING_INTERVAL:.0f} s, "
        f"presence flush 60 s, idle {args.idle} s, permessage-deflate {args.deflate}; load {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, dict] = {}
    runs: list[tuple[str, str, str | None]] = [(kind, kind, None) for kind in args.servers.split(",")]
    if args.old:
        runs += [(f"{kind}-old", kind, str(Path(args.old).resolve())) for kind, _, _ in runs if kind != "raw"]
    for label, kind, code in runs:
        storm: dict = {}
        trace = f"/tmp/adiuva-fleet-trace-{os.getpid()}-{label}" if args.tracemalloc and kind != "raw" else None
        r = results[label] = measure(
            kind,
            args.devices,
            args.idle,
            users,
            drain=args.drain,
            storm=storm,
            trace=trace,
            deflate=args.deflate,
            code=code,
        )
        online = "" if r["online"] is None else f", {r['online']} online in presence after {r['online_s']:.0f} s"
        print(
            f"{label:8s} connected {r['connected']} ({r['connect_s']:.0f} s incl. client start-up{online}) | "
            f"RSS {r['rss_empty_mb']:.0f} MB empty -> "
            f"{r['rss_fleet_mb']:.0f} MB ({r['rss_per_conn_kb']:.1f} KB/connection, "
            f"{r['rss_fleet_mb'] / r['rss_empty_mb']:.2f}x empty) | idle CPU {r['cpu_idle'] * 100:.2f}% of a core "
            f"(empty server {r['cpu_empty'] * 100:.2f}%)"
        )
        if kind != "raw":
            print(
                f"{label:8s} disconnect storm ({r['connected']} at once): {storm['withdraw_failed']} presence "
                f"withdrawals failed, {storm['heartbeat_failed']} node heartbeats failed, "
                f"{storm['max_connections']} MaxConnectionsError in the log"
            )
        if trace:
            print_allocations(trace, r["connected"])
    raw = results.get("raw")
    for kind, r in results.items():
        if raw is None or kind == "raw":
            continue
        # CPU times tick in 10 ms: below 0.05 % of a core the raw server's figure is mostly rounding.
        cpu_ratio = f"{r['cpu_idle'] / raw['cpu_idle']:.1f}x" if raw["cpu_idle"] >= 0.0005 else "raw ~0"
        print(
            f"{kind:8s} vs raw: memory per connection {r['rss_per_conn_kb'] / raw['rss_per_conn_kb']:.2f}x "
            f"({r['rss_per_conn_kb']:.1f} vs {raw['rss_per_conn_kb']:.1f} KB), idle CPU {cpu_ratio} "
            f"({r['cpu_idle'] * 100:.2f}% vs {raw['cpu_idle'] * 100:.2f}% of a core)"
        )
    for label, r in results.items():
        old = results.get(f"{label}-old")
        if old is not None:
            print(
                f"{label:8s} vs {label}-old: memory per connection "
                f"{r['rss_per_conn_kb'] / old['rss_per_conn_kb']:.2f}x "
                f"({r['rss_per_conn_kb']:.1f} vs {old['rss_per_conn_kb']:.1f} KB), idle CPU "
                f"{r['cpu_idle'] * 100:.2f}% vs {old['cpu_idle'] * 100:.2f}% of a core"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--raw-server":
        asyncio.run(raw_server(int(sys.argv[2]), deflate=sys.argv[3] == "on"))
    elif len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, ready_file, per_user, *tokens = sys.argv
        setup_django()
        asyncio.run(client_process(url, tokens, int(per_user), ready_file))
    else:
        main()
