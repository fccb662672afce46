"""REST requests per second of one uvicorn process: an authenticated ``GET auth/me``, ``GET
storage/records`` (a page of 20), ``GET storage/records/<id>`` (one blob), ``GET memory`` (the
counts per kind), ``GET memory/associative`` (a page of 20, decrypted) and ``GET
memory/associative/<id>`` against a bare Django async view returning the same JSON as auth/me (and
the same view written sync), same server, same run.

    .venv/bin/python bench/rest_per_process.py [--seconds 4] [--concurrency 16] [--rounds 2] [--old PATH]
        [--paths "memory/associative,auth/me"]

Every server (bench/rest_server.py, one process per checkout) is up for the whole round, and each
path is measured on each server back to back: per path, ``--concurrency`` keep-alive connections
send requests back to back for ``--seconds`` (a raw asyncio client; it costs little next to the
server, but shares the machine). Ratios to the bare view are the figures to read. ``--old PATH``
measures another checkout (``git worktree add PATH <commit>`` with .venv linked, or ``git archive
<commit> | tar -x -C PATH``) beside this one, for before → after: the median of each round's own
old → new ratio, which a change of the box's load between the two measurements moves least.
Beside req/s it prints the server process's CPU per request (``/proc``, measured over the same
seconds) and the bare view's CPU per request over each path's: on a shared box the req/s of one
path pair swing 0.4-2.5x with the load while these stay within ~10 %; on an idle box, where the one
server process is what limits, the two ratios to the bare view say the same thing.

``--paths`` measures only the named paths (and the bare async view), for quick before → after runs.

Each API path also has a twin (thirteenth stop): a bare async view on the same server answering that
path's own body (read once through Django's test client before the servers start; JSON built from its
data by ``JsonResponse``, a blob as its bytes), measured right after the path. "x twin" is the path
against it: the issue's "bare Django async view returning the same JSON", per path, where "x bare"
(every earlier stop's figure) compares every path with a view answering auth/me's small JSON. The gap
between the two is what building and sending a bigger body costs by itself.

Seventeenth stop, old = 71fd632, ``--rounds 3 --seconds 3`` (2026-12-08 01:57, load 0.7-1.1): the lookups
by key (the session check, an owned item or record, the memory counts) run as prepared statements of each
loop connection (apps.core.loop_prepared); the list pages still go as text. PostgreSQL's and Redis's CPU per
request (printed since this stop) old -> new: auth/me 198 -> 61 us, memory counts 132 -> 57, records/<id>
175 -> 67, memory item 172 -> 65, records list 278 -> 241, memory list 340 -> 318. New / old req/s: auth/me
1.21x, memory counts 1.16x, records/<id> 1.25x, memory item 1.19x, records list 1.08x, memory list 1.05x.
To this run's bare view, new: auth/me 0.76x, memory counts 0.76x, records/<id> 0.66x, memory item 0.64x,
records list 0.45x, memory list 0.41x (by CPU 0.77, 0.81, 0.71, 0.68, 0.54, 0.50x); the new server's
bare view ran 0.84x the old one's (same code), which lifts these: against the old bare view auth/me 0.64x,
memory list 0.34x.

Fifteenth stop, old = d316efc, ``--rounds 3 --seconds 3``, two runs on a slow box (A 20:02, B 20:09,
load 0.2-1.5, ~25 % steal): a request served on the loop makes no trip to a thread (the request signals
are sent on the loop and Django's connection receivers run in the request's own thread only when it
made a sync call; CSRF's view check runs on the loop for an exempt view). New / old req/s (A / B): bare
view 1.71 / 2.05x, auth/me 1.63 / 1.57x, records list 1.35 / 1.45x, memory counts 1.49 / 1.57x, memory
list 1.33 / 1.31x, records/<id> 1.45 / 1.51x, memory item 1.49 / 1.51x; server CPU per request 0.55-0.68x
per path, 0.47-0.56x for the bare view. The bare view lost the same trips, so every ratio to it fell: to
the bare view, new (A / B) auth/me 0.59 / 0.52x, memory counts 0.56 / 0.50x, records/<id> 0.57 / 0.48x,
memory item 0.50 / 0.42x, records list 0.47 / 0.43x, memory list 0.38 / 0.34x (old in B: 0.70, 0.64, 0.65,
0.57, 0.58, 0.52x).

Eleventh stop, old = 772677b, ``--rounds 3 --seconds 3``, two runs on an idle box (A 09:56, B 09:59,
load 0.8-1.2; the bare view ~1,185 / 1,119 req/s): a request on the loop no longer makes a Django
database wrapper and a cache backend of its own (loop_db.loop_wrapper, redis_pool.cache_backend). Within
the bench's spread: new / old req/s auth/me 1.10 / 1.04x, memory list 1.12 / 1.05x, memory item 1.31 /
1.03x, records/<id> 1.15 / 1.00x, with the bare view, whose code is the same, 1.16 / 1.14x. To this run's
bare view (A / B): auth/me 0.60 / 0.67x, records list 0.46 / 0.51x, memory counts 0.50 / 0.60x, memory
list 0.40 / 0.47x, records/<id> 0.51 / 0.56x, memory item 0.50 / 0.49x; old in B, against a bare view of
946 req/s: 0.75, 0.62, 0.62, 0.54, 0.62, 0.59x.

Tenth stop, old = e1cb59c, ``--rounds 3 --seconds 3``, idle box (2026-12-07 06:50-06:54, load 0.1-1.7,
the bare view 1,251 req/s): records/<id> reads a blob of up to 64 KiB in a local directory on the
loop instead of in the request's thread: its req/s 1.16x old (rounds 1.48, 1.16, 1.07), CPU per request
0.84x; to the bare view 0.36 -> 0.48x (by CPU 0.38 -> 0.51x). The other paths (unchanged): auth/me
0.60x, records list 0.51x, memory counts 0.55x, memory item 0.45x, memory list 0.39x (by CPU 0.65,
0.55, 0.61, 0.48, 0.44x). Run B (07:30-07:33, the bare view 1,361 req/s): records/<id> 1.24x old's req/s,
0.79x its CPU, 0.38 -> 0.46x the bare view (by CPU 0.39 -> 0.48x).

Ninth stop, old = 09e8320, ``--rounds 3 --seconds 3``, two runs on an idle box (A 04:08-04:12, load
1.0-1.3; B 04:42-04:45, load 0.6-1.7, the bare view 0.7x A's): the reads and throttle hits asked in one
turn of the server's loop go out as one batch (apps.core.loop_batches: the session and page queries as
one multi-statement message on one connection, the throttle's hits as one script call). Req/s to this
run's bare view, old -> new (A / B): auth/me 0.45 -> 0.65 / 0.51 -> 0.67x, records list 0.34 -> 0.52 /
0.30 -> 0.50x, memory counts 0.35 -> 0.56 / 0.44 -> 0.57x, memory list 0.31 -> 0.45 / 0.28 -> 0.51x,
records/<id> 0.36 -> 0.40 / 0.38 -> 0.49x, memory item 0.29 -> 0.51 / 0.38 -> 0.52x; new / old req/s
1.35-1.58x (A), 1.19-1.84x (B); server CPU per request new / old 0.62-0.75x (A), 0.54-0.83x (B),
the bare view 0.99x / 1.05x. With 16 requests at a time on one loop in one process (the bare view,
auth/me, memory counts and records list in turn), 16,800 reads went out in 4,073 batches (4.1 a batch,
6 % of the reads alone) and 10,080 throttle hits in 2,854 (3.5 a batch). Before, the memory counts
(auth/me's work and one read more) cost ~470 us of server CPU more than auth/me (03:43, same box): a
read awaited alone pays psycopg's send, the epoll registration, the wakeup and the receive, and system
calls are slow on this box. records/<id> reads its blob through Django's storage in the request's thread (a
trip the other paths no longer make; S3 in production).

Eighth stop, 2026-12-07 02:06-02:09 (idle box, the seventh stop's; load from the bench itself),
old = 8e96cb0, each checkout with its own defaults (ASGI_REQUEST_THREADS 8 there, 32 now), ``--rounds 3
--seconds 3``: req/s new / old auth/me 1.55x, records list 1.27x, memory list 1.22x, records/<id>
1.21x, memory counts 1.33x, memory item 1.32x, bare view 1.22x; to this run's bare view auth/me 0.44 ->
0.50x, memory item 0.39 -> 0.49x, memory counts 0.41 -> 0.48x, records/<id> 0.48 -> 0.46x, memory list
0.39 -> 0.42x, records list 0.39 -> 0.40x. The hot reads are async views now (apps.core.loop_views: the
session and page queries over the loop's psycopg pool, the throttle on the loop's Redis client); the
throttle-beside-auth split below was removed with them. Both at 32 threads (01:53): paths 1.08-1.22x
old, 0.35-0.46x the bare view.

Idle box, 2026-12-06 18:02-18:04 (load 0.7-2.2, nothing else running), old = ec5c4bc, new = this
stop's code (batch decryption, the throttle hit beside the session query), ``--rounds 2 --seconds 3``,
req/s to the bare async view old → new: memory list 0.49 → 0.53x (absolute 1.04x; by CPU 0.52 →
0.58x, CPU per request 0.94x), records list 0.55 → 0.56x, auth/me 0.64 → 0.65x, records/<id> 0.57 →
0.59x, memory counts 0.58 → 0.61x, memory item 0.55 → 0.58x; every other path's CPU 0.99-1.03x.

Figures of 2026-12-06 17:37-17:48 (this stop; 2 cores shared with three other engineers' runs, load
0.3-2.3: req/s swing with the load, an idle-box run should replace them), old = ec5c4bc, new = the
throttle hit sent before the session query and read after it, before the view; medians, ``--paths
memory/associative,storage/records,auth/me --seconds 3``:
    run A (2 rounds, load 0.8-1.6), req/s to the bare async view old → new: memory list 0.47 → 0.56x
    (absolute 1.17x, rounds 1.07 / 1.28), records list 0.53 → 0.54x (1.01x), auth/me 0.68 → 0.70x
    (1.02x), bare view 0.99x; server CPU per request memory list 0.99x, records list 0.96x, auth/me
    0.97x, bare view 1.01x
    run B (3 rounds, load 1.5-2.3; the bare view's own req/s moved 0.82x between the two servers, so
    only the absolute ratios are given): absolute old → new memory list 1.02x, records list 1.14x (rounds
    1.16 / 0.72 / 1.14), auth/me 1.03x; CPU per request memory list 0.93x, records list 1.08x, auth/me
    1.00x, bare view 0.96x
    run C (17:46-17:48, 3 rounds, load 1.5-2.3): req/s to the bare view old → new memory list
    0.50 → 0.53x (absolute 1.05x, rounds 1.05 / 1.08 / 1.05), records list 0.56 → 0.57x (1.02x),
    auth/me 0.64 → 0.66x (1.04x), bare view 1.00x; CPU per request memory list 0.94x (rounds 0.94 /
    0.91 / 0.94), records list 0.99x, auth/me 0.97x, bare view 1.01x
    run D (17:44-17:46, 3 rounds, load 0.3-2.3), old = 34fde8b (the reply read after the view's query)
    → new: req/s memory list 1.01x, records list 0.98x, auth/me 1.01x, bare view 1.01x; CPU per request
    0.99-1.02x: reading the reply before the view costs nothing measurable against reading it after
    (The figures of 17:15-17:31 measured an earlier form that read the reply after the view's query;
    that form ran a refused request's whole view, and is gone.)
Cuts: (1) a page's Fernet tokens are opened as one batch (``FernetReader.open_many``: one AES call and
one XOR for the page, the HMAC from the key's precomputed inner and outer SHA-256 states; in one
process 3.2 → 2.4 µs a token, ``memory_page`` ~360 → ~320 µs); (2) on the memory lists, counts, item
and the records list, the tier throttle's Redis script is sent before the session query (keyed by
the access token's user id) and its reply read after it, before the view as in DRF
(``apps.core.throttle_beside_auth``): one blocking wait fewer per request, and a request over its
budget is still refused before its view runs. A
round trip the request's thread waits for cost the server ~100-120 µs CPU (an added ``SELECT 1`` or
Redis ``PING`` in the memory list, interleaved runs) against ~25 µs in one process: the wait hands the
interpreter lock to the event loop and back. Left: the URL resolver tries the includes before
memory's and storage's (resolving ``memory/associative`` ~30 µs, ``auth/me`` ~13 µs, the bare view
~5 µs in one process); the session query and the page query are still two waits; auth/me does
not use the mixin (its hit is still waited for).

Idle box, 2026-12-06 14:52-14:59 (load 0.1 → 2.1, only this bench running), old = 129053e, runs
I / II of 3 rounds of 3 s, medians, to the bare async view (req/s; by CPU), old → new:
    memory list       0.45 → 0.51x; 0.47 → 0.54x  |  0.47 → 0.51x; 0.50 → 0.54x
    records list      0.52 → 0.56x; 0.55 → 0.60x  |  0.52 → 0.55x; 0.55 → 0.58x
    auth/me           0.62 → 0.66x; 0.66 → 0.69x  |  0.65 → 0.63x; 0.69 → 0.67x
    memory counts     0.57 → 0.60x; 0.60 → 0.64x  |  0.58 → 0.60x; 0.63 → 0.64x
    records/<id>      0.57 → 0.60x; 0.60 → 0.63x  |  0.58 → 0.59x; 0.60 → 0.62x
    memory item       0.54 → 0.57x; 0.58 → 0.60x  |  0.57 → 0.56x; 0.60 → 0.58x
    absolute old → new, req/s (I / II): memory list 1.15 / 1.13x, records list 1.10 / 1.13x, auth/me
    1.06 / 1.04x, bare async 1.03 / 1.07x; CPU per request memory list 0.87 / 0.87x, records list
    0.90 / 0.88x, auth/me 0.94 / 0.96x, bare async 0.98 / 0.94x, every path 0.87-0.98x.

Figures of 2026-12-06 14:34-14:41 (this stop; 2 cores shared with the other engineers' runs, load
2.2-4.0), old = 129053e, runs A / B of 3 rounds of 3 s, medians, by the server's CPU per request
(req/s to the bare view swung 0.4-1.2x with the load in these runs and are not quoted). Cuts: the
list pages' dates come from PostgreSQL as the text / Unix seconds the lists answer (Django's
timestamptz loader is Python, ~3.5 µs a date: one process, a page of 20 and its items 650 → 420 µs
for memory, 300 → 120 µs for records); the memory (core, associative, episodic) and records pages are
written by orjson, byte for byte JSONRenderer's (44 → 10 µs a page); DRF's content negotiation is
remembered per Accept header (~20 µs of every API request); the ASGI entry point freezes its
import-time objects out of the cyclic collector's sight (a full collection walked ~400,000 of them,
~130 ms, 3 times in 10 s of this bench; every path, the bare views included, gains).
    CPU per request old → new (A / B): memory list 0.86 / 0.88x, records list 0.83 / 0.90x,
    auth/me 0.89 / 0.93x, memory counts 0.95 / 0.91x, records/<id> 0.91 / 0.89x, memory item
    0.91 / 0.96x, bare async view 0.88 / 0.96x, bare sync view 1.06 / 0.89x
    bare async view's CPU over the path's, old → new (A / B): memory list 0.52 → 0.53, 0.52 → 0.58;
    records list 0.57 → 0.61, 0.55 → 0.60; auth/me 0.72 → 0.70, 0.69 → 0.72
    before the freeze (14:10, the page and orjson cuts only, --paths, load 3): memory list 0.91x,
    records list 0.91x, auth/me 1.02x, bare async view 0.98x
The freeze makes the bare view cheaper too, so the ratios to it move less than the lists' own CPU.

Figures of 2026-12-06 10:51-11:18 (2 cores shared with 7 other engineers' runs, load 3.6-10.4),
old = 7361c05, new = the memory list's page opened by one FernetReader and built without its
serializer, 3 rounds of 4 s, medians, runs A / B / C / D (A before the CPU columns existed):
    memory/associative, req/s to the bare view, old → new: A 0.55 → 0.57, B 0.51 → 0.65,
                        C 0.52 → 0.52, D 0.55 → 0.61; old → new absolute 1.03 / 1.16 / 1.16 / 1.10x
                        server CPU per request: B 3,897 → 3,458 µs (0.89x), C 3,905 → 3,512 µs
                        (0.90x), D 3,693 → 3,095 µs (0.84x)
                        bare CPU over its CPU: B 0.46 → 0.53x, C 0.48 → 0.51x, D 0.44 → 0.53x
    every other path, CPU per request old → new (B / C / D): bare async 1.04 / 0.89 / 0.98x,
    auth/me 0.96 / 1.02 / 1.05x, records list 0.93 / 1.08 / 0.95x, memory counts 1.01 / 0.98 /
    0.98x, records/<id> 1.00 / 1.02 / 1.06x, memory item 1.05 / 0.95 / 0.98x (unchanged within the
    noise); to the bare view by CPU (new, B / C / D): auth/me 0.71 / 0.70 / 0.69x, records list
    0.58 / 0.55 / 0.58x, records/<id> 0.67 / 0.62 / 0.64x, memory counts 0.70 / 0.66 / 0.66x,
    memory item 0.59 / 0.59 / 0.61x.
Where the memory list's time went (py-spy --gil, 10 s under 16 clients, old code): its view was
19 % of the server's samples: the DRF serializer 6.7 % (4.9 % of it ``DateTimeField`` asking for the
current time zone, an asgiref ``Local``, at each of 40 dates), the page's 40 ``Fernet.decrypt``
4.5 %, the query 5.1 % (1.5 % parsing timestamps in psycopg), the rest building the views; after,
9 %. What remains is Django's and uvicorn's per-request work that the other paths pay too (a
thread per request, the middleware chain, URL resolving, a database wrapper per thread).

Figures of 2026-12-06 (earlier stop), three runs (2 cores shared with 7 other engineers' runs; A 07:59 at load
6-9, B 08:11 at load 8-13, C 08:21 at load 8-10, C with the memory list's serializer change),
old = 8ba86a3, 3 rounds of 3 s, medians. To the bare view, old → new:
                              run A         run B         run C
    auth/me                   0.53 → 0.62   0.67 → 0.72   0.43 → 0.74
    storage/records           0.53 → 0.64   0.68 → 0.59   0.46 → 0.56
    storage/records/<id>      0.71 → 0.78   0.60 → 0.61   0.37 → 0.57
    memory (counts)           0.56 → 0.68   0.64 → 0.66   0.52 → 0.78
    memory/associative        0.39 → 0.52   0.38 → 0.38   0.34 → 0.52
    memory/associative/<id>   0.47 → 0.71   0.45 → 0.57   0.42 → 0.64
    bare sync / bare async    0.93 / 1.00   1.20 / 1.03   0.83 / 1.23
Old → new absolute, median of the rounds' own ratios (A / B / C): auth/me 1.15 / 1.21 / 1.27x,
records list 1.18 / 1.08 / 1.11x, records/<id> 1.11 / 1.23 / 1.32x, memory counts 1.18 / 1.14 /
0.98x, memory list 1.28 / 1.04 / 1.28x, memory item 1.32 / 1.31 / 1.29x; single rounds range
0.66-1.91x. The memory list reached 0.5x in A and C, not in B: its page is decrypted item by item
and counted by a window over every matching row (apps/memory/selectors.py, not changed here;
the window was replaced since, see memory_page_size.py: at 20 memories, load 2-4, 3 rounds, the
list stayed 0.42x the bare view before and after, 1.02x old → new, and 0.99x at 300).
Quiet box (load < 1, main at 8ba86a3, 2 rounds): auth/me 0.57x, records list 0.52x, records/<id>
0.59x, memory counts 0.62x, memory list 0.47x, memory item 0.55x. Earlier (previous stop, load
9-17, one server after the other): auth/me 0.45-0.50x, records list 0.31-0.66x.

Where an authenticated GET's time went beyond the bare view (py-spy --gil under 16 clients, and
per-call CPU measured in one process): the session check (a compiled query, but read through
``raw()``, which worked out its columns again per call: ~265 µs CPU, now ~150 µs with ``from_db``),
the throttle's hit (a new redis-py client per request, ~170 response callbacks copied, and a
two-command pipeline: 228 → 76 µs CPU, now one script on a client made once per pool), the JWT
check (~80 µs CPU per request; a validated token is now remembered per process, its expiry checked
on every use), auth/me's second query for the verified address (now in the session query) and
serializers built per request (auth/me, memory item, memory counts). Every check still runs: the
session (revocation) is asked on every request, the throttle counts every request. What stays is
Django's own per-request cost, which the bare view pays too (a new thread per request for the
request signals' sync receivers and the sync view), one database and one Redis round trip, and
DRF's dispatch. The hot views stay sync DRF views (see the bare sync view).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from device_common import ROOT, free_port, make_users, services_cpu, setup_django, start_server_command, stop

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


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (``/proc``, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(
    port: int, pid: int, path: str, token: str, *, seconds: float, concurrency: int
) -> tuple[float, float, float, list[str]]:
    """Requests per second, the server process's CPU seconds per request, and PostgreSQL's and Redis's
    (``services_cpu``: they share the box's cores with the server), over ``seconds``."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    # Warm up (first requests load code and open pools), then measure.
    counts: list[int] = [0]
    errors: list[str] = []
    await asyncio.gather(*(_client(port, request, time.perf_counter() + 0.5, counts, errors) for _ in range(4)))
    counts, errors = [0], []
    cpu_before, services_before = _cpu_seconds(pid), services_cpu()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_client(port, request, deadline, counts, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    served = max(counts[0], 1)
    server_cpu, services = (_cpu_seconds(pid) - cpu_before) / served, (services_cpu() - services_before) / served
    return counts[0] / elapsed, server_cpu, services, errors


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


def _print_old_new(figures: dict[tuple[str, str], list[float]], paths: dict[str, str], title: str) -> None:
    """Per path, the median of the rounds' own new / old ratios: each pair was measured back to back."""
    for name in paths:
        pairs = zip(figures[("old", name)], figures[("new", name)], strict=True)
        ratios = [after / before for before, after in pairs]
        each = " ".join(f"{ratio:.2f}" for ratio in ratios)
        print(f"  {title}  {name:21} {statistics.median(ratios):5.2f}x   (rounds: {each})")


def _slug(name: str) -> str:
    return name.replace("/", "-").replace(" ", "-")


def _twin(name: str) -> str:
    return f"bare twin of {name}"


def _twin_ratio(figures: dict[tuple[str, str], list[float]], label: str, name: str, *, inverse: bool = False) -> str:
    """The path's figure over its twin's (req/s), or the twin's over the path's (CPU per request)."""
    twin = figures.get((label, _twin(name)))
    if not twin:
        return ""
    mine, theirs = statistics.median(figures[(label, name)]), statistics.median(twin)
    return f"   {(theirs / mine if inverse else mine / theirs):5.2f}x twin"


def _bodies_file(paths: dict[str, str], token: str) -> str:
    """Every path's answer, read once through Django's test client, in a file for the servers' bare
    twins (``rest_server._bodies``): JSON as its data, anything else as its bytes."""
    import base64
    import json
    import tempfile

    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1")  # the Host the bench's clients send
    bodies: dict[str, dict[str, object]] = {}
    for name, path in paths.items():
        response = client.get(path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        if response.status_code != 200:
            raise SystemExit(f"{name}: {response.status_code} from the test client")
        content_type = response["Content-Type"]
        if content_type.startswith("application/json"):
            bodies[_slug(name)] = {"json": json.loads(response.content)}
        else:
            bodies[_slug(name)] = {"bytes": base64.b64encode(response.content).decode(), "content_type": content_type}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(bodies, file)
    return file.name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--records",
        type=int,
        default=20,
        help="records and associative memories of the bench's user (a user of its own per number: the lists' pages "
        "hold min(N, their page size) items)",
    )
    parser.add_argument("--old", help="another checkout to measure beside this one (before → after)")
    parser.add_argument("--paths", help="only these paths, by name, comma-separated (and always the bare async view)")
    args = parser.parse_args()

    setup_django(migrate=True)
    ((user_id, token),) = make_users(1, prefix=f"restbench-{args.records}")
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

    if args.paths:
        chosen = {"bare async view", *(name.strip() for name in args.paths.split(","))}
        if unknown := chosen - paths.keys():
            raise SystemExit(f"unknown paths {sorted(unknown)}; known: {', '.join(paths)}")
        paths = {name: path for name, path in paths.items() if name in chosen}
    # Each API path's twin: a bare async view answering the same body (the issue's "bare Django async
    # view returning the same JSON", per path), measured right after it on the same server.
    api_paths = {name: path for name, path in paths.items() if path.startswith("/api/")}
    bodies = _bodies_file(api_paths, token)
    twins = {name: f"/bench/bare/{_slug(name)}" for name in api_paths}
    codes = {"new": str(ROOT)}
    if args.old:
        codes = {"old": os.path.abspath(args.old), **codes}
        _share_blobs(Path(codes["old"]))
    results: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    services_per_request: dict[tuple[str, str], list[float]] = {}
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
                        env={"ADIUVA_BENCH_CODE": code, "ADIUVA_BENCH_BODIES": bodies},
                        quiet=True,
                    ),
                )
            for name, path in paths.items():
                for label, (port, proc) in servers.items():
                    for measured, url in ((name, path), (_twin(name), twins.get(name))):
                        if url is None:
                            continue
                        rate, cpu_per_request, services, errors = asyncio.run(
                            _measure(port, proc.pid, url, token, seconds=args.seconds, concurrency=args.concurrency)
                        )
                        if errors:
                            raise SystemExit(f"{label} {measured}: non-200 answers {sorted(set(errors))}")
                        results.setdefault((label, measured), []).append(rate)
                        cpu.setdefault((label, measured), []).append(cpu_per_request)
                        services_per_request.setdefault((label, measured), []).append(services)
        finally:
            for _port, proc in servers.values():
                stop(proc)

    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per path, {args.rounds} rounds (median req/s)")
    print("  (x bare: to the bare view answering auth/me's JSON; x twin: to a bare view answering the path's own body)")
    for label in codes:
        bare = statistics.median(results[(label, "bare async view")])
        for name in paths:
            rate = statistics.median(results[(label, name)])
            twin = _twin_ratio(results, label, name)
            print(f"  {label:3}  {name:21} {rate:8.1f} req/s   {rate / bare:5.2f}x bare{twin}")
    if args.old:
        _print_old_new(results, paths, "old → new")
    # The same paths by the server process's own CPU per request, which the box's load moves far less
    # than req/s: bare CPU / path CPU is the share of the bare view's rate one busy core would serve.
    print("server CPU per request (median µs), and the bare async view's CPU per request over the path's")
    for label in codes:
        bare_cpu = statistics.median(cpu[(label, "bare async view")])
        for name in paths:
            per_request = statistics.median(cpu[(label, name)])
            twin = _twin_ratio(cpu, label, name, inverse=True)
            print(f"  {label:3}  {name:21} {per_request * 1e6:8.0f} µs   {bare_cpu / per_request:5.2f}x bare{twin}")
    if args.old:
        _print_old_new(cpu, paths, "CPU old → new")
    print("PostgreSQL's and Redis's CPU per request (median µs; the embedded services, on the same cores)")
    for label in codes:
        for name in paths:
            print(f"  {label:3}  {name:21} {statistics.median(services_per_request[(label, name)]) * 1e6:8.0f} µs")


if __name__ == "__main__":
    main()
