"""Memory enrichment benchmark on PostgreSQL 18 + pgvector 0.8: exact per-user scan vs HNSW with
iterative index scans under the per-user filter.

Runs in its own database (``bench_memory`` on the same PostgreSQL server, dropped at the end)
with the real memory tables (all migrations), real per-user encryption and the real
``memory_context`` selector. For each scenario (users x memories per user) it measures

* ``memory_context`` latency p50/p95 (core + top-k associative + recent episodes + patterns,
  decrypted, one round trip) without an ANN index (every search is an exact scan);
* the exact per-user cosine scan alone (the recall baseline);
* the HNSW index the schema ships (``embedding::halfvec(1536)``, ``halfvec_cosine_ops``, m=16,
  ef_construction=64; build time printed) searched like ``selectors.py`` does (candidates by
  HNSW, exact re-rank by the full vectors) with ``hnsw.iterative_scan`` off / relaxed_order /
  strict_order, several ``hnsw.ef_search`` and candidate counts, recall@k against the exact scan;
* ``memory_context`` again with the index and the shipped settings.

Embeddings are synthetic but clustered like real ones: a shared pool of topics (users talk
about the same things), each user has a few topics, each memory is its topic plus noise
(same-topic cosine about 0.7), each query is one of the user's topics plus fresh noise.

    .venv/bin/python bench/memory_enrichment.py                      # default scenarios
    .venv/bin/python bench/memory_enrichment.py --scenario 10x1000   # quick run
    .venv/bin/python bench/memory_enrichment.py --scenario 100x10000 --no-hnsw --queries 100

Figures from 2026-11-27 on the 2-core dev box while seven other developers ran their suites
(load average 8-10: every latency here is inflated several times; ratios within a run hold), k=10,
100 queries:

    100 users x 1,000   memory_context (4 queries then) p50 78 ms / p95 120 ms; exact scan alone
                        p50 17 ms / p95 29 ms; the planner keeps the owner's btree + exact sort
                        (recall 1.000) with the HNSW index present: nothing to gain at this size.
    10 users x 10,000   exact scan p50 189 ms / p95 282 ms; HNSW build 255 s for 100,000 rows
                        iterative off, ef 40, no re-rank:      0.26x / 0.36x, recall 0.785
                        relaxed_order, ef 40, no re-rank:      0.24x / 0.30x, recall 0.861
                        relaxed_order, ef 40, re-rank 40:      0.30x / 0.45x, recall 0.941
                        relaxed_order, ef 100, re-rank 40:     0.30x / 0.56x, recall 0.950 (shipped)
                        strict_order, ef 100, re-rank 40:      0.35x / 1.14x, recall 0.867
                        memory_context: exact 348 / 470 ms -> shipped 109 / 194 ms (p50 / p95)
    100 users x 10,000  not run: the HNSW build alone extrapolates to ~45 min for 1M rows on
                        this box (255 s per 100k, superlinear), beyond the time available.

Choice: HNSW over halfvec with ``relaxed_order`` iterative scans (ef_search 100), 40 candidates
re-ranked exactly; recall@10 0.95 at 10,000 memories per user where pgvector 0.6 gave 0.78-0.87.
The 20 ms p95 goal is not met on this box; under a per-user filter HNSW visits the other users'
rows too (selectivity 1/users), which is the next thing to remove (hash partitions by user).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

from bench_db import database_create, database_drop, server_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "bench_memory"
DIMS = 1536
TOPIC_POOL = 200
TOPICS_PER_USER = 20
NOISE = 0.7  # uniform noise scale relative to the topic's; cos(same topic) ~ 1 / (1 + NOISE^2)


def _drop_database() -> None:
    from apps.accounts.keys import _fernet_for

    _fernet_for.cache_clear()  # keys of the dropped database's users must not be reused
    database_drop(BENCH_DB)


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = server_url(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
    import django

    django.setup()
    from django.conf import settings

    # One plain connection: the pool adds nothing to a single-threaded benchmark.
    settings.DATABASES["default"]["OPTIONS"] = {}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _populate(users: int, per_user: int, rng: random.Random) -> list[uuid.UUID]:
    from django.core.management import call_command
    from django.db import connection

    from apps.accounts.keys import user_fernet, user_key_create
    from apps.accounts.models import User
    from apps.memory.services import core_memory_set, episode_record, pattern_upsert

    call_command("migrate", "accounts", verbosity=0)
    call_command("migrate", "memory", verbosity=0)
    # The shipped HNSW index is built (timed) after the bulk insert, not maintained row by row.
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS memory_assoc_embedding_hnsw")
    user_ids: list[uuid.UUID] = []
    for index in range(users):
        user = User.objects.create_user(email=f"bench{index}@example.com", password="bench-password-123")
        user_key_create(user=user)
        user_ids.append(user.id)
        # The rest of the context, at plausible sizes: 10 preferences, 20 episodes, 10 patterns.
        for key in range(10):
            core_memory_set(user_id=user.id, key=f"preference {key}", value=f"value {key} for user {index}")
        for episode in range(20):
            episode_record(user_id=user.id, session_id=f"s{episode}", summary=f"episode {episode} of user {index}")
        for pattern in range(10):
            pattern_upsert(user_id=user.id, description=f"habit {pattern}", confidence=pattern / 10 + 0.05)

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # A topic's components are uniform in [-0.5, 0.5]; "+ 0 * t" keeps the subquery per row.
        cursor.execute(
            "CREATE TABLE bench_topic AS SELECT t AS id, "
            f"array(SELECT random() - 0.5 + 0 * t FROM generate_series(1, {DIMS}))::real[] AS v "
            f"FROM generate_series(0, {TOPIC_POOL - 1}) t"
        )
        cursor.execute("CREATE TABLE bench_stage (id uuid, user_id uuid, content bytea, topic int)")
        for user_id in user_ids:
            fernet = user_fernet(user_id=user_id)
            topics = rng.sample(range(TOPIC_POOL), TOPICS_PER_USER)
            with cursor.copy("COPY bench_stage (id, user_id, content, topic) FROM STDIN") as copy:
                for row in range(per_user):
                    content = fernet.encrypt(f"memory {row} of {user_id}: something worth recalling".encode())
                    copy.write_row((uuid.uuid4(), user_id, content, rng.choice(topics)))
        cursor.execute(
            "INSERT INTO memory_associativememory "
            "(id, created_at, updated_at, user_id, content_encrypted, embedding) "
            "SELECT s.id, now(), now(), s.user_id, s.content, "
            # unnest() detoasts the topic once; subscripting it 1536 times would detoast each time.
            f"array(SELECT x + {NOISE} * (random() - 0.5) FROM unnest(t.v) x)::vector "
            "FROM bench_stage s JOIN bench_topic t ON t.id = s.topic"
        )
        cursor.execute("DROP TABLE bench_stage")
        cursor.execute("ANALYZE")
    print(f"  populated {users * per_user:,} memories in {time.perf_counter() - started:.0f} s", flush=True)
    return user_ids


def _queries(user_ids: list[uuid.UUID], count: int, rng: random.Random) -> list[tuple[uuid.UUID, list[float]]]:
    """Queries near one of the user's own topics (what a relevant question looks like)."""
    from django.db import connection

    queries = []
    with connection.cursor() as cursor:
        for _ in range(count):
            user_id = rng.choice(user_ids)
            cursor.execute(
                "SELECT array(SELECT x + %s * (random() - 0.5) FROM unnest(m.embedding::real[]) x) "
                "FROM memory_associativememory m WHERE m.user_id = %s ORDER BY random() LIMIT 1",
                [NOISE, user_id],
            )
            queries.append((user_id, [float(x) for x in cursor.fetchone()[0]]))
    return queries


def _set(settings: dict[str, str]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for name in ("hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples"):
            cursor.execute(f"RESET {name}")
        for name, value in settings.items():
            cursor.execute(f"SET {name} = {value}")


# Candidate searches: each returns the ids of the user's k nearest memories (by its own measure).
EXACT_SQL = (
    "SELECT id FROM memory_associativememory WHERE user_id = %(user)s ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s"
)
# The shipped shape (apps/memory/selectors.py): HNSW on the halfvec expression index for
# ``shortlist`` candidates, re-ranked by the full vectors.
HNSW_SQL = (
    "SELECT c.id FROM (SELECT id, embedding FROM memory_associativememory WHERE user_id = %(user)s "
    "ORDER BY embedding::halfvec(1536) <=> %(q)s::halfvec(1536) LIMIT %(shortlist)s) c "
    "ORDER BY c.embedding <=> %(q)s::vector LIMIT %(k)s"
)


def _run_sql(sql: str, workload, k: int, **params) -> tuple[list[float], list[list[uuid.UUID]], str]:
    from django.db import connection

    latencies, results = [], []
    with connection.cursor() as cursor:
        for user_id, vector in workload[:5]:  # warm up
            cursor.execute(sql, {"user": user_id, "q": str(vector), "k": k, **params})
            cursor.fetchall()
        for user_id, vector in workload:
            started = time.perf_counter()
            cursor.execute(sql, {"user": user_id, "q": str(vector), "k": k, **params})
            rows = cursor.fetchall()
            latencies.append(time.perf_counter() - started)
            results.append([row[0] for row in rows])
        user_id, vector = workload[0]
        cursor.execute("EXPLAIN " + sql, {"user": user_id, "q": str(vector), "k": k, **params})
        plan = " ".join(row[0] for row in cursor.fetchall())
    kind = (
        "hnsw" if "hnsw" in plan.lower() or "bench_hnsw" in plan else ("index-only" if "Index Only" in plan else "scan")
    )
    return latencies, results, kind


def _measure_context(workload, k: int) -> list[float]:
    from apps.memory.selectors import memory_context

    latencies = []
    for user_id, vector in workload[:5]:  # warm the cache and the per-user key cache
        memory_context(user_id=user_id, query_embedding=vector, top_k=k)
    for user_id, vector in workload:
        started = time.perf_counter()
        context = memory_context(user_id=user_id, query_embedding=vector, top_k=k)
        latencies.append(time.perf_counter() - started)
        assert len(context.associative) <= k
    return latencies


def _recall(exact: list[list[uuid.UUID]], approx: list[list[uuid.UUID]]) -> float:
    found = sum(len(set(e) & set(a)) for e, a in zip(exact, approx, strict=True))
    return found / max(1, sum(len(e) for e in exact))


def _report(name: str, lat: list[float], recall: float, base: tuple[float, float], plan: str) -> tuple:
    p50, p95 = _percentile(lat, 0.5), _percentile(lat, 0.95)
    print(
        f"  {name:<34} [{plan:<10}] p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
        f"({p50 / base[0]:.2f}x / {p95 / base[1]:.2f}x of exact)  recall@10 {recall:.3f}",
        flush=True,
    )
    return (name, plan, p50, p95, recall)


def run_scenario(
    users: int, per_user: int, *, queries: int, k: int, seed: int, exact_only: bool = False, hnsw: bool = True
) -> list[tuple]:
    from django.db import connection

    rng = random.Random(seed)
    print(f"\n== {users} users x {per_user:,} memories per user ({users * per_user:,} rows), k={k}", flush=True)
    user_ids = _populate(users, per_user, rng)
    workload = _queries(user_ids, queries, rng)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE memory_associativememory")

    context_lat = _measure_context(workload, k)
    print(
        f"  memory_context without an ANN index (exact): p50 {_percentile(context_lat, 0.5) * 1000:.1f} ms, "
        f"p95 {_percentile(context_lat, 0.95) * 1000:.1f} ms",
        flush=True,
    )
    _set({})
    exact_lat, exact_ids, plan = _run_sql(EXACT_SQL, workload, k)
    base = (_percentile(exact_lat, 0.5), _percentile(exact_lat, 0.95))
    rows = [_report("exact scan (vector, inline)", exact_lat, 1.0, base, plan)]
    if exact_only:
        return rows

    if hnsw:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            cursor.execute("SET max_parallel_maintenance_workers = 1")
            cursor.execute(
                "CREATE INDEX bench_hnsw ON memory_associativememory "
                "USING hnsw ((embedding::halfvec(1536)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            cursor.execute("ANALYZE memory_associativememory")
        build = time.perf_counter() - started
        print(f"  HNSW (halfvec) build: {build:.0f} s for {users * per_user:,} rows", flush=True)
        for mode, ef, shortlist in (
            ("off", 40, 10),
            ("relaxed_order", 40, 10),
            ("relaxed_order", 40, 40),
            ("relaxed_order", 100, 40),
            ("strict_order", 100, 40),
        ):
            _set({"hnsw.ef_search": str(ef), "hnsw.iterative_scan": mode})
            lat, ids, plan = _run_sql(HNSW_SQL, workload, k, shortlist=shortlist)
            rows.append(_report(f"hnsw {mode} ef={ef} rerank {shortlist}", lat, _recall(exact_ids, ids), base, plan))
        _set({"hnsw.ef_search": "100", "hnsw.iterative_scan": "relaxed_order"})  # the shipped defaults
        context_lat = _measure_context(workload, k)
        print(
            f"  memory_context with the HNSW index (shipped): p50 {_percentile(context_lat, 0.5) * 1000:.1f} ms, "
            f"p95 {_percentile(context_lat, 0.95) * 1000:.1f} ms",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario",
        action="append",
        help="USERSxPER_USER, repeatable (default: 100x1000 and 10x10000)",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--exact-only", action="store_true", help="only the exact scan (for the largest scales)")
    parser.add_argument("--no-hnsw", action="store_true", help="skip the HNSW build (hours at 1M x 1536 on 2 cores)")
    args = parser.parse_args()
    scenarios = [tuple(int(x) for x in s.split("x")) for s in (args.scenario or ["100x1000", "10x10000"])]

    _setup_django()
    try:
        for users, per_user in scenarios:
            database_create(BENCH_DB)  # a fresh database per scenario
            run_scenario(
                users,
                per_user,
                queries=args.queries,
                k=args.k,
                seed=args.seed,
                exact_only=args.exact_only,
                hnsw=not args.no_hnsw,
            )
            _drop_database()
    finally:
        _drop_database()


if __name__ == "__main__":
    main()
