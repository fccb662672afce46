"""REST requests per second of one uvicorn process: an authenticated ``GET auth/me``, ``GET
storage/records`` (a page of 20), ``GET storage/records/<id>`` (one blob), ``GET memory`` (the
counts per kind), ``GET memory/associative`` (a page of 20, decrypted) and ``GET
memory/associative/<id>`` against a bare Django async view returning the same JSON as auth/me (and
the same view written sync), same server, same run.

    .venv/bin/python bench/rest_per_process.py [--seconds 4] [--concurrency 16] [--rounds 2] [--old PATH]

Each server (bench/rest_server.py, one process) is measured in turn: per path, ``--concurrency``
keep-alive connections send requests back to back for ``--seconds`` (a raw asyncio client; it
costs little next to the server, but shares the machine). Ratios to the bare view are the figures
to read. ``--old PATH`` measures another checkout (``git worktree add PATH <commit>`` with .venv
linked, or ``git archive <commit> | tar -x -C PATH``) the same way, interleaved round by round, for
before → after; with a busy box the old → new ratio of absolute rates is steadier than the ratios
to each server's own bare view.

Figures of 2026-12-06 05:00-05:35 (same box, 2 cores shared with 7 other engineers' runs, load
average 9-17), old = dbf7e95, 3 rounds of 3 s, medians. Run A: the compiled pages and memory
reads; runs B and C: also the answers rendered in the view.
                              to bare view (old → new)                  old → new absolute
                              run A         run B         run C         A      B      C
    auth/me                   0.42 → 0.50   0.59 → 0.50   0.57 → 0.45   1.27x  1.06x  0.84x
    storage/records           0.46 → 0.44   0.39 → 0.31   0.43 → 0.66   1.04x  0.99x  1.68x
    storage/records/<id>      0.71 → 0.67   0.36 → 0.39   0.79 → 0.52   1.01x  1.39x  0.70x
    memory (counts)           0.35 → 0.59   0.32 → 0.42   0.41 → 0.62   1.83x  1.66x  1.64x
    memory/associative        0.16 → 0.48   0.13 → 0.24   0.15 → 0.38   3.18x  2.41x  2.82x
    memory/associative/<id>   0.34 → 0.49   0.33 → 0.39   0.47 → 0.50   1.53x  1.53x  1.15x
    bare sync / bare async    1.61 / 1.32   1.03 / 0.70   1.35 / 1.03
At this load the same path moves 0.7x-1.4x between servers of one run (records/<id>, whose code
did not change for GET), so only the memory reads' gains (1.6x-3.2x in every run) are clear; the
records list (1.04x / 0.99x / 1.68x) and auth/me are within the noise, and the records list is
not shown at 0.5x. Earlier figures (previous stop, load 2 / 10-12 / 11-12): auth/me 0.66x /
0.61x / 0.43x, records/<id> 0.67x / 0.50x, records list 0.47x / 0.42x / 0.36x.

Where it went (py-spy under 16 clients; a sync view runs in Django's one sync thread, so every
database or Redis round trip of every request queues there):
- memory/associative: a serializer instantiated per item (its fields deep-copied, 11 % of the
  process's samples against 5 % for the query); now one serializer per page, and the page and its
  count are one compiled query (a window count), the item by id is compiled, the four counts one query.
- storage/records: the page query's compilation (now compiled, and the count rides on the page
  query); what is left in the view thread is three round trips (session check, the throttle's Redis
  pipeline, the page), about equal, and almost no Python.
- every DRF answer: Django's async handler hops to the sync thread a second time only to render a
  DRF Response; the hot reads now leave the view rendered (apps/core/rendered_responses.py).
Not found: why the records list stays below records/<id> with the same number of round trips.
The hot views stay sync DRF views (see the bare sync view).
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
    "memory counts": "/api/v1/memory",
    "memory/associative": "/api/v1/memory/associative",
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


def _memories(user_id: str, n: int) -> str:
    """Make sure the user has ``n`` associative memories; the id of the oldest (the one
    ``GET memory/associative/<id>`` reads)."""
    import random

    from apps.memory.models import AssociativeMemory
    from apps.memory.services import associative_memory_add

    rng = random.Random(0)
    for i in range(AssociativeMemory.objects.filter(user_id=user_id).count(), n):
        embedding = [rng.uniform(-1, 1) for _ in range(1536)]
        associative_memory_add(
            user_id=user_id, content=f"memory {i}: the user likes tea", embedding=embedding, entity_type="topic"
        )
    memories = AssociativeMemory.objects.filter(user_id=user_id).order_by("created_at")
    return str(memories.values_list("id", flat=True)[0])


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
    memory_id = _memories(user_id, args.records)
    paths = {
        **PATHS,
        "storage/records/id": f"/api/v1/storage/records/{record_id}",
        "memory/associative/id": f"/api/v1/memory/associative/{memory_id}",
    }

    codes = {"new": str(ROOT)}
    if args.old:
        codes = {"old": os.path.abspath(args.old), **codes}
        _share_blobs(Path(codes["old"]))
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        # Every checkout's server runs for the whole round and each path is measured on each of them
        # in turn, so a change of the box's load lands on both sides of a before → after pair.
        servers = {}
        try:
            for label, code in codes.items():
                port = free_port()
                servers[label] = (
                    port,
                    start_server_command(
                        [str(ROOT / "bench" / "rest_server.py"), str(port)],
                        port,
                        env={"ADIUVA_BENCH_CODE": code},
                        quiet=True,
                    ),
                )
            for name, path in paths.items():
                for label, (port, _proc) in servers.items():
                    rate, errors = asyncio.run(
                        _measure(port, path, token, seconds=args.seconds, concurrency=args.concurrency)
                    )
                    if errors:
                        raise SystemExit(f"{label} {name}: non-200 answers {sorted(set(errors))}")
                    results.setdefault((label, name), []).append(rate)
        finally:
            for _port, proc in servers.values():
                stop(proc)

    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per path, {args.rounds} rounds (median req/s)")
    for label in codes:
        bare = statistics.median(results[(label, "bare async view")])
        for name in paths:
            rate = statistics.median(results[(label, name)])
            print(f"  {label:3}  {name:21} {rate:8.1f} req/s   {rate / bare:5.2f}x bare")
    if args.old:
        # Median of the rounds' own ratios: each pair was measured back to back.
        for name in paths:
            pairs = zip(results[("old", name)], results[("new", name)], strict=True)
            ratios = [after / before for before, after in pairs]
            each = " ".join(f"{ratio:.2f}" for ratio in ratios)
            print(f"  old → new  {name:21} {statistics.median(ratios):5.2f}x   (rounds: {each})")


if __name__ == "__main__":
    main()
