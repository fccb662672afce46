"""Where ``memory_context``'s time goes at 10,000 memories per user, each phase as a share of the
whole, measured query by query in the same run (bench/memory_enrichment.py compares it to an exact
scan; this one splits it).

    .venv/bin/python bench/memory_context_phases.py [--users 4] [--queries 200]

Per query, in turn: the first pass alone (the Hamming ranking of the user's sign bits, an index-only
scan, cut to the shortlist), the associative query (first pass + exact re-rank of the shortlist, top
10), and ``memory_context`` (that query as one branch of the whole context, then decryption of the
top 10 and the rest). Prints an ``EXPLAIN (ANALYZE, BUFFERS)`` of the associative query first.
Uses the memory_enrichment bench's database, schema and synthetic clustered vectors.

2026-12-06, 4 users x 10,000, load average 13-15 (2 cores shared by eight engineers' suites):
first pass 47.3 / 83.9 ms (p50 / p95), + re-rank of 400 54.1 / 92.1 ms, memory_context 58.5 /
102.9 ms: the first pass is about 0.8 of the whole, the re-rank about 0.1, decryption and the rest
of the context the remainder (only the top 10 are decrypted). EXPLAIN: the first pass reads 338
index pages and sorts 10,000 distances; the re-rank reads 400 heap rows (vectors are stored inline).
"""

from __future__ import annotations

import argparse
import os
import random
import time

import memory_enrichment as bench
from bench_db import database_create


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    database_create(bench.BENCH_DB)
    bench._setup_django()
    from django.core.management import call_command
    from django.db import connection

    from apps.memory.selectors import _ASSOCIATIVE_SQL, _search_params, memory_context

    first_pass = (
        "SELECT id FROM memory_associativememory WHERE user_id = %(user_id)s "
        "ORDER BY embedding_bits <~> binary_quantize(%(query)s::vector) LIMIT %(candidates)s"
    )
    rng = random.Random(5)
    try:
        user_ids = bench._populate(args.users, 10_000, rng)
        workload = bench._queries(user_ids, args.queries, rng)
        call_command("migrate", "memory", verbosity=0)
        phases: dict[str, list[float]] = {"first pass": [], "first pass + re-rank": [], "memory_context": []}
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE memory_associativememory")
            user_id, vector = workload[0]
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + _ASSOCIATIVE_SQL, {"user_id": user_id, **_search_params(vector, 10)}
            )
            plan = [row[0] for row in cursor.fetchall()]
            print("\n".join(line for line in plan if "Sort Key" not in line), flush=True)
            print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
            for measured in (False, True):  # the first round warms the caches
                for user_id, vector in workload:
                    params = {"user_id": user_id, **_search_params(vector, 10)}
                    started = time.perf_counter()
                    cursor.execute(first_pass, params)
                    cursor.fetchall()
                    passed = time.perf_counter()
                    cursor.execute(_ASSOCIATIVE_SQL, params)
                    cursor.fetchall()
                    ranked = time.perf_counter()
                    memory_context(user_id=user_id, query_embedding=vector, top_k=10)
                    ended = time.perf_counter()
                    if measured:
                        phases["first pass"].append(passed - started)
                        phases["first pass + re-rank"].append(ranked - passed)
                        phases["memory_context"].append(ended - ranked)
        whole = phases["memory_context"]
        base = (bench._percentile(whole, 0.5), bench._percentile(whole, 0.95))
        for name, latencies in phases.items():
            p50, p95 = bench._percentile(latencies, 0.5), bench._percentile(latencies, 0.95)
            print(
                f"{name:<22} p50 {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
                f"({p50 / base[0]:.2f}x / {p95 / base[1]:.2f}x of memory_context)",
                flush=True,
            )
        print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        bench._drop_database()


if __name__ == "__main__":
    main()
