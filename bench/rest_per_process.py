"""REST requests per second of one uvicorn process: an authenticated ``GET auth/me``, ``GET
storage/records`` (a page of 20) and ``GET storage/records/<id>`` (one blob) against a bare Django
async view returning the same JSON (and the same view written sync), same server, same run.

    .venv/bin/python bench/rest_per_process.py [--seconds 4] [--concurrency 16] [--rounds 2] [--old PATH]

Each server (bench/rest_server.py, one process) is measured in turn: per path, ``--concurrency``
keep-alive connections send requests back to back for ``--seconds`` (a raw asyncio client; it
costs little next to the server, but shares the machine). Ratios to the bare view are the figures
to read. ``--old PATH`` measures another checkout (``git archive <commit> | tar -x -C PATH``) the
same way, interleaved round by round, for before → after.

Figures of 2026-12-06 (same box), old = the commit before the compiled session/verified-address/record
queries and the first page without COUNT; three runs, load average 2 / 10-12 / 11-12:
    auth/me to bare view            old 0.49x / 0.30x / 0.38x    new 0.66x / 0.61x / 0.43x
    storage/records to bare         old 0.37x / 0.30x / 0.16x    new 0.47x / 0.42x / 0.36x
    storage/records/<id> to bare    old   -   / 0.41x / 0.32x    new   -   / 0.67x / 0.50x
    bare sync view to bare async    1.17x / 1.19x / 1.12x (old checkout), 1.19x / 1.07x (new)
The 0.5x goal holds for auth/me and records/<id> in the quieter runs, not under load 11-12, and not
for the records list.
Where it went (py-spy --gil, auth/me under 16 clients): the ORM compiling the same two queries on
every request (0.6-0.8 ms of CPU each, against 0.07 ms for a round trip), not the database or the
thread hop. An async view pays neither here: the ORM would still hop to a thread per query, and a
sync view already beats an async one of the same body under this middleware chain (see the sync
bare view), so the hot views stay sync DRF views. Left on storage/records: the page query's
compilation, DRF's serializers, the throttle's Redis round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from device_common import ROOT, free_port, make_users, setup_django, start_server_command, stop

PATHS = {
    "bare async view": "/bench/bare-me",
    "bare sync view": "/bench/bare-sync-me",
    "auth/me": "/api/v1/auth/me",
    "storage/records": "/api/v1/storage/records",
}


async def _client(port: int, request: bytes, deadline: float, counts: list[int], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != b"200":
                errors.append(status.decode())
            counts[0] += 1
    finally:
        writer.close()


async def _measure(port: int, path: str, token: str, *, seconds: float, concurrency: int) -> tuple[float, list[str]]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    # Warm up (first requests load code and open pools), then measure.
    counts: list[int] = [0]
    errors: list[str] = []
    await asyncio.gather(*(_client(port, request, time.perf_counter() + 0.5, counts, errors) for _ in range(4)))
    counts, errors = [0], []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_client(port, request, deadline, counts, errors) for _ in range(concurrency)))
    return counts[0] / (time.perf_counter() - started), errors


def _records(user_id: str, n: int) -> str:
    """Make sure the user has ``n`` records; the id of the oldest (the one ``GET storage/records/<id>`` reads)."""
    import hashlib

    from apps.accounts.models import User
    from apps.storage.records import record_create

    user = User.objects.get(pk=user_id)
    for i in range(user.storage_records.count(), n):
        blob = f"ciphertext {i}".encode()
        record_create(user=user, table="tasks", blob=blob, checksum=hashlib.sha256(blob).hexdigest())
    return str(user.storage_records.order_by("created_at").values_list("id", flat=True)[0])


def _share_blobs(code: Path) -> None:
    """The other checkout reads the blobs this one wrote (the test settings keep media under each
    checkout's own data directory)."""
    from django.conf import settings

    media = Path(settings.MEDIA_ROOT)
    theirs = code / media.relative_to(ROOT)
    if not theirs.exists():
        theirs.parent.mkdir(parents=True, exist_ok=True)
        theirs.symlink_to(media, target_is_directory=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--old", help="another checkout to measure beside this one (before → after)")
    args = parser.parse_args()

    setup_django(migrate=True)
    ((user_id, token),) = make_users(1, prefix="restbench")
    from apps.accounts.models import User

    # Records need a paid tier; its budget times the scale below is one the bench cannot exhaust,
    # while the throttle still counts every request.
    User.objects.filter(pk=user_id).update(tier="power")
    record_id = _records(user_id, args.records)
    paths = {**PATHS, "storage/records/id": f"/api/v1/storage/records/{record_id}"}

    codes = {"new": str(ROOT)}
    if args.old:
        codes = {"old": os.path.abspath(args.old), **codes}
        _share_blobs(Path(codes["old"]))
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, code in codes.items():
            port = free_port()
            proc = start_server_command(
                [str(ROOT / "bench" / "rest_server.py"), str(port)], port, env={"ADIUVA_BENCH_CODE": code}, quiet=True
            )
            try:
                for name, path in paths.items():
                    rate, errors = asyncio.run(
                        _measure(port, path, token, seconds=args.seconds, concurrency=args.concurrency)
                    )
                    if errors:
                        raise SystemExit(f"{label} {name}: non-200 answers {sorted(set(errors))}")
                    results.setdefault((label, name), []).append(rate)
            finally:
                stop(proc)

    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per path, {args.rounds} rounds (median req/s)")
    for label in codes:
        bare = statistics.median(results[(label, "bare async view")])
        for name in paths:
            rate = statistics.median(results[(label, name)])
            print(f"  {label:3}  {name:16} {rate:8.1f} req/s   {rate / bare:5.2f}x bare")
    if args.old:
        for name in paths:
            before = statistics.median(results[("old", name)])
            after = statistics.median(results[("new", name)])
            print(f"  old → new  {name:16} {after / before:5.2f}x")


if __name__ == "__main__":
    main()
