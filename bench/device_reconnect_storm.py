"""Reconnect storm: N devices connecting at once; time from the first connect to the last hello answered.

    .venv/bin/python bench/device_reconnect_storm.py [--devices 2000] [--users 200] [--rounds 2] [--old PATH]

The devices are known (registered, offline) before the first round, as in a real reconnect storm.
Each round, in the same run and interleaved: a bare ``websockets`` server that answers each hello
with a welcome (the floor), then the project's uvicorn server (auth, the device row, presence, the
connect handlers: outbox check, overdue agents). The same client processes open every socket at
once, send ``device_hello`` (with capabilities, so the server answers ``device_welcome``) and wait for
the answer. Prints both spans, their ratio (median over rounds), failed sockets, and the ERROR lines
the server logged. Load on this shared machine moves the absolute figures; the ratio is the result.
``--old PATH`` storms another checkout (``git worktree add /tmp/old <commit>``) too, in the same
round right after this one (ADIUVA_BENCH_CODE), for before → after figures.

Also printed: the server process's CPU seconds from the go to the last answer (and the embedded
PostgreSQL backends' and Redis's), as a ratio to the raw server's: on this shared box the spans move
with the load, the CPU much less.

Measured with ``--devices 2000 --rounds 3 --old`` against 8ba86a3 (before the batched device rows
and announcements), load 7.7-9.4 on the shared 2-core box: raw 7.32 / 5.10 / 4.39 s; after 9.58 /
6.50 / 7.88 s (**1.31x / 1.28x / 1.80x, median 1.31x**), before 16.56 / 14.70 / 17.83 s (2.26x /
2.89x / 4.07x, median 2.89x); after / before in the same round **0.44x** (median). Server CPU per
storm 1.6-2.0 s against 6.0-6.6 s before (**2.89x** raw's, before 11.13x). All 2,000 online every
round, nothing logged at ERROR. A run before the batched announcements (load 5.8-9.5): 1.50x against
3.21x, 0.42x.

Where the server's event loop spends the storm now (py-spy ``--gil``, 2,000 devices): uvicorn and
``websockets`` answering the handshakes and reading the frames about half (the raw server pays its
own), the JWT's signature check 9.5 %, the socket's own set-up (channel, inbox, timers) 6 %, the
batch writers 3 %, the welcome 2 %; the closes after the span 12 %.

Before that (``--rounds 2``, load 10-12, against the commit before the batched session checks and
the socket database threads): 2,000 devices, before 992 and 161 of 2,000 came online; after, all
2,000 in 18.9 s and 18.0 s against raw 5.7 s and 6.8 s (median 2.98x). Profiled then: the process's
one sync thread was busy ~85 % of the storm; after the socket database threads, ~48 % of those
threads' time went to waiting in ``SELECT ... FOR UPDATE OF user``: a user's devices queued behind
each other's transactions (mended: a known device's row is taken over with the other hellos' in
one statement locking only device rows, ``presence_connect``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from device_common import BENCH_DB, ROOT, free_port, make_users, setup_django, start_server, start_server_command, stop

CLIENT_PROCESSES = 4


async def raw_server(port: int) -> None:
    import websockets

    async def handler(ws) -> None:
        async for message in ws:
            if json.loads(message).get("type") == "device_hello":
                await ws.send(json.dumps({"type": "device_welcome", "protocol": 2, "capabilities": []}))

    async with websockets.serve(handler, "127.0.0.1", port, ping_interval=None):
        await asyncio.Future()


async def client_process(url: str, go_file: str, out_file: str, per_user: int, tokens: list[str]) -> None:
    import websockets

    sockets = []
    reasons: dict[str, int] = {}

    async def one(token: str, device_id: str) -> float | None:
        try:
            ws = await websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None, ping_interval=None
            )
            sockets.append(ws)
            await ws.send(json.dumps({"type": "device_hello", "device_id": device_id, "capabilities": []}))
            while json.loads(await ws.recv()).get("type") != "device_welcome":
                pass
            return time.time()
        except Exception as exc:
            received = getattr(exc, "rcvd", None)  # a closed socket's close frame
            reason = type(exc).__name__ + (f" {received.code}" if received is not None else "")
            reasons[reason] = reasons.get(reason, 0) + 1
            return None

    while not os.path.exists(go_file):  # noqa: ASYNC110, ASYNC240 (a file the parent writes)
        await asyncio.sleep(0.005)
    start = time.time()
    ends = await asyncio.gather(*(one(token, f"storm-{j}") for token in tokens for j in range(per_user)))
    done = [end for end in ends if end is not None]
    Path(out_file).write_text(  # noqa: ASYNC240 (once, after the timing)
        json.dumps(
            {
                "start": start,
                "last": max(done, default=start),
                "ok": len(done),
                "failed": len(ends) - len(done),
                "reasons": reasons,
            }
        )
    )
    await asyncio.sleep(3)  # hold the sockets so the server's connect work finishes under load
    for ws in sockets:
        await ws.close()


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:  # a database backend that ended
            continue
    return total


def service_processes() -> list[psutil.Process]:
    """This checkout's PostgreSQL backends serving the bench database and its Redis (embedded under
    .data): the CPU a storm costs beyond the server process."""
    data = str(ROOT / ".data")
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if data in cmdline and "redis-server" in cmdline:
            found.append(proc)
        elif cmdline.startswith("postgres: ") and f" {BENCH_DB} " in cmdline:
            with contextlib.suppress(psutil.NoSuchProcess):
                if data in " ".join(psutil.Process(proc.info["ppid"]).cmdline()):
                    found.append(proc)
    return found


def storm(url: str, users: list[tuple[str, str]], per_user: int, server: subprocess.Popen) -> dict:
    """One storm; besides the span, the CPU seconds the server process and the services spent from the
    go to the last answer (on a loaded box the span moves with the load, the CPU much less)."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    go_file = f"/tmp/adiuva-storm-go-{tag}"
    chunk = len(users) // CLIENT_PROCESSES
    outs, procs = [], []
    for p in range(CLIENT_PROCESSES):
        out = f"/tmp/adiuva-storm-{tag}-{p}"
        outs.append(out)
        tokens = [t for _, t in users[p * chunk : (p + 1) * chunk]]
        argv = [sys.executable, __file__, "--client", url, go_file, out, str(per_user), *tokens]
        procs.append(subprocess.Popen(argv, cwd=str(ROOT)))
    time.sleep(3)  # the client processes import and wait for the go
    server_process = psutil.Process(server.pid)
    services = service_processes()
    cpu_before = cpu_seconds([server_process]), cpu_seconds(services)
    Path(go_file).write_text("go")
    while not all(os.path.exists(out) for out in outs):
        if any(proc.poll() not in (None, 0) for proc in procs):
            break
        time.sleep(0.02)
    # New database backends (the pool grows in a storm) count from their start.
    services += [proc for proc in service_processes() if proc not in services]
    cpu_server = cpu_seconds([server_process]) - cpu_before[0]
    cpu_services = cpu_seconds(services) - cpu_before[1]
    for proc in procs:
        proc.wait(600)
    os.remove(go_file)
    results = [json.loads(Path(out).read_text()) for out in outs]
    for out in outs:
        os.remove(out)
    return {
        "span": max(r["last"] for r in results) - min(r["start"] for r in results),
        "ok": sum(r["ok"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "reasons": {k: sum(r["reasons"].get(k, 0) for r in results) for r in results for k in r["reasons"]},
        "cpu": cpu_server,
        "cpu_services": cpu_services,
    }


def devices_register(users: list[tuple[str, str]], per_user: int) -> None:
    """Each user's devices known and offline, as before a reconnect storm: ``storm-0`` ... (the
    ids the clients say hello with); rows left by earlier runs go."""
    from apps.devices.models import Device

    Device.objects.filter(user_id__in=[user_id for user_id, _ in users]).delete()
    Device.objects.bulk_create(
        Device(user_id=user_id, device_id=f"storm-{j}") for user_id, _ in users for j in range(per_user)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--old", help="another checkout to storm beside this one (before → after)")
    args = parser.parse_args()
    codes = [("new", None)] + ([("old", str(Path(args.old).resolve()))] if args.old else [])
    setup_django(migrate=True)
    users = make_users(args.users, prefix="storm")
    per_user = max(1, args.devices // args.users)
    devices_register(users, per_user)
    print(f"reconnect storm: {per_user * args.users} devices over {args.users} users, {args.rounds} rounds")
    ratios: dict[str, list[float]] = {label: [] for label, _ in codes}
    cpu_ratios: dict[str, list[float]] = {label: [] for label, _ in codes}
    new_to_old: list[float] = []
    for round_ in range(args.rounds):
        port = free_port()
        raw = start_server_command([__file__, "--raw-server", str(port)], port, kind="raw", quiet=True)
        try:
            r = storm(f"ws://127.0.0.1:{port}/", users, per_user, raw)
        finally:
            stop(raw)
        print(
            f"round {round_ + 1} (load {os.getloadavg()[0]:.1f}): raw websockets {r['ok']} ok / {r['failed']} failed "
            f"in {r['span']:.2f} s, cpu {r['cpu']:.2f} s"
        )
        spans = {}
        for label, code in codes:
            a, errors = adiuva_storm(users, per_user, code)
            # A span is only comparable when every socket got its answer on both sides.
            ratio = a["span"] / r["span"] if not a["failed"] and not r["failed"] else None
            if ratio is not None:
                ratios[label].append(ratio)
                cpu_ratios[label].append(a["cpu"] / r["cpu"])
                spans[label] = a["span"]
            print(
                f"    {label}: {a['ok']} ok / {a['failed']} failed {a['reasons'] or ''} in {a['span']:.2f} s, "
                f"{len(errors)} errors logged, cpu {a['cpu']:.2f} s (+ {a['cpu_services']:.2f} s database and "
                "Redis) | " + (f"ratio {ratio:.2f}x" if ratio is not None else "no ratio (sockets failed)")
            )
            for line in errors[:1]:
                print("       ", line[:200], "...", line.replace("\\n", " | ")[-400:])
        if len(spans) == 2:
            new_to_old.append(spans["new"] / spans["old"])
    for label, values in ratios.items():
        if values:
            print(
                f"median ratio {label} (adiuva / raw, first connect -> last hello answered): "
                f"{statistics.median(values):.2f}x over {len(values)} rounds; server cpu "
                f"{statistics.median(cpu_ratios[label]):.2f}x raw's"
            )
    if new_to_old:
        print(f"median span new / old (same round): {statistics.median(new_to_old):.2f}x over {len(new_to_old)} rounds")


def adiuva_storm(users: list[tuple[str, str]], per_user: int, code: str | None) -> tuple[dict, list[str]]:
    """One storm against the project's uvicorn server (of ``code``'s checkout, or this one): the
    result and the ERROR lines it logged."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (read and closed below)
    server = start_server("uvicorn", port, output=log, env={"ADIUVA_BENCH_CODE": code} if code else None)
    try:
        result = storm(f"ws://127.0.0.1:{port}/api/v1/ws/device", users, per_user, server)
        time.sleep(2)
    finally:
        stop(server)
        log.seek(0)
        errors = [line for line in log.read().splitlines() if '"level": "ERROR"' in line or "Traceback" in line]
        log.close()
    return result, errors


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, go_file, out_file, per_user, *tokens = sys.argv
        asyncio.run(client_process(url, go_file, out_file, int(per_user), tokens))
    elif len(sys.argv) > 1 and sys.argv[1] == "--raw-server":
        asyncio.run(raw_server(int(sys.argv[2])))
    else:
        main()
