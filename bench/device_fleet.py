"""Idle fleet: N connected devices with heartbeats; server RSS per connection and idle CPU.

    .venv/bin/python bench/device_fleet.py [--devices 2000] [--idle 65] [--servers uvicorn,daphne]

Devices are reference clients (hello, pongs) spread over client processes; the server runs with
the production heartbeat (ping 30 s, presence flush 60 s), so the idle window sees pings, pongs and
presence writes. Baseline for the ratio: the same server's RSS and CPU with no device connected.
Then every client process is killed at once (a disconnect storm) and the server's log is read for
``--drain`` seconds: failed presence withdrawals and failed node heartbeats are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from device_common import ROOT, free_port, make_users, setup_django, start_server, stop


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


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(kind: str, n_devices: int, idle: float, users: list[tuple[str, str]], *, drain: float, storm: dict) -> dict:
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (read and closed after the storm, in finally)
    server = start_server(
        kind, port, env={"DEVICE_PING_INTERVAL": "30", "DEVICE_PRESENCE_FLUSH_INTERVAL": "60"}, output=log
    )
    ps = psutil.Process(server.pid)
    clients = []
    try:
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
            if time.monotonic() - start > 600:
                raise RuntimeError("fleet did not connect")
            time.sleep(0.5)
        connected = sum(int(Path(f).read_text()) for f in ready)
        connect_time = time.monotonic() - start
        time.sleep(5)
        rss1 = ps.memory_info().rss
        c1 = cpu_seconds(ps)
        time.sleep(idle)
        idle_cpu = (cpu_seconds(ps) - c1) / idle
        rss2 = ps.memory_info().rss
        return {
            "connected": connected,
            "connect_s": connect_time,
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--idle", type=float, default=65.0)
    parser.add_argument("--servers", default="uvicorn,daphne")
    parser.add_argument("--drain", type=float, default=15.0)
    args = parser.parse_args()
    setup_django(migrate=True)
    users = make_users(args.users, prefix="fleet")
    print(f"fleet: {args.devices} devices over {args.users} users, ping 30 s, presence flush 60 s, idle {args.idle} s")
    for kind in args.servers.split(","):
        storm: dict = {}
        r = measure(kind, args.devices, args.idle, users, drain=args.drain, storm=storm)
        print(
            f"{kind:8s} connected {r['connected']} ({r['connect_s']:.0f} s incl. client start-up) | "
            f"RSS {r['rss_empty_mb']:.0f} MB empty -> "
            f"{r['rss_fleet_mb']:.0f} MB ({r['rss_per_conn_kb']:.1f} KB/connection, "
            f"{r['rss_fleet_mb'] / r['rss_empty_mb']:.2f}x empty) | idle CPU {r['cpu_idle'] * 100:.2f}% of a core "
            f"(empty server {r['cpu_empty'] * 100:.2f}%)"
        )
        print(
            f"{kind:8s} disconnect storm ({r['connected']} at once): {storm['withdraw_failed']} presence withdrawals "
            f"failed, {storm['heartbeat_failed']} node heartbeats failed, "
            f"{storm['max_connections']} MaxConnectionsError in the log"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, ready_file, per_user, *tokens = sys.argv
        setup_django()
        asyncio.run(client_process(url, tokens, int(per_user), ready_file))
    else:
        main()
