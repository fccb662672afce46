"""Catalog search benchmark: ``GET /api/v1/plugins?q=`` through the whole API vs the bare SQL.

Runs in its own database (``bench_marketplace`` on the same PostgreSQL server, dropped at the
end) with the real marketplace tables and 50,000 synthetic listed plugins (bulk-inserted, search
vectors computed by the same expression approval uses). For a fixed set of queries (common and
rare words, two-word searches) it measures p50/p95 of

* the API: Django's test client, JWT auth, tier gate, throttle, ``catalog_search`` (GIN-indexed
  ``search_vector @@ websearch_to_tsquery``, ranked with ts_rank), count, serialization;
* the bare SQL of the same search (match on the stored vector through the GIN index, rank, first
  page, count) on one psycopg cursor: the baseline;
* the design the stored vector replaces: ``to_tsvector(...) @@ query`` computed per row at query
  time (no index can serve it), for a few runs only.

    .venv/bin/python bench/marketplace_search.py                 # 50,000 plugins
    .venv/bin/python bench/marketplace_search.py --plugins 5000  # quick run

Figures from 2026-11-27 on the shared 2-core dev box, 50,000 plugins, 13 queries x 5 runs:

    bare SQL, stored vector + GIN (baseline)   p50   10.4 ms  p95  132.2 ms   1.00x / 1.00x
    GET /api/v1/plugins?q= (whole API)         p50   38.2 ms  p95  293.0 ms   3.67x / 2.22x
    bare SQL, to_tsvector per row (no index)   p50 1484   ms  p95 2296   ms  142.8x / 17.4x

A rare term uses the GIN index (Bitmap Index Scan); a word in most plugins is a parallel seq scan
and dominates p95 (ranking ~43k matches).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench_db import database_create, database_drop, server_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "bench_marketplace"
PAGE = 20
# A Zipf-distributed vocabulary like real product copy: a few words everywhere, a long tail of
# words few plugins use. Product words take the top ranks; pseudo-words fill the tail.
PRODUCT_WORDS = [
    "time",
    "notes",
    "tasks",
    "project",
    "report",
    "sync",
    "calendar",
    "invoice",
    "focus",
    "team",
    "track",
    "manage",
    "export",
    "import",
    "share",
    "plan",
    "review",
    "summary",
    "weekly",
    "daily",
    "client",
    "board",
    "view",
    "chart",
    "reminder",
    "template",
    "automation",
    "budget",
    "hours",
    "billing",
    "status",
    "progress",
    "milestone",
    "dashboard",
    "widget",
    "filter",
    "label",
    "priority",
    "deadline",
    "archive",
    "search",
    "integration",
    "webhook",
    "email",
    "slack",
    "drive",
    "kanban",
    "pomodoro",
    "gantt",
    "markdown",
    "okr",
    "retainer",
    "timesheet",
    "backlog",
]
SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "xe", "za", "bo", "ce", "di", "fu", "ga", "hi", "jo"]
VOCABULARY_SIZE = 20_000
QUERIES = [
    "time",  # rank 1: in most plugins
    "report",
    "calendar",
    "kanban",  # product words further down the distribution
    "pomodoro",
    "timesheet",
    "time tracking",
    "weekly report",
    "invoice clients",
    "kanban board",
]


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    words = list(PRODUCT_WORDS)
    seen = set(words)
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        cumulative.append(total)
    # a few tail pseudo-words become queries too (rare terms: a handful of plugins each)
    QUERIES.extend([words[2_000], words[8_000], f"{words[3]} {words[5_000]}"])
    return words, cumulative


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = server_url(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
    import django

    django.setup()
    from django.conf import settings

    settings.DATABASES["default"]["OPTIONS"] = {}
    settings.BILLING_RATE_LIMIT_SCALE = 10_000  # measure the search, not the request budget
    settings.ALLOWED_HOSTS = ["testserver"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _text(rng: random.Random, vocabulary: tuple[list[str], list[float]], words: int) -> str:
    return " ".join(rng.choices(vocabulary[0], cum_weights=vocabulary[1], k=words))


def _populate(count: int, rng: random.Random):
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import User
    from apps.marketplace.manifest import PluginCategory
    from apps.marketplace.models import Plugin, PluginStatus, PluginVersion, VersionStatus
    from apps.marketplace.transitions import SEARCH_CONFIG

    call_command("migrate", verbosity=0)  # accounts, billing (the throttle reads seats), marketplace…
    developer = User.objects.create_user(email="bench-dev@example.com", password="x" * 20)
    reader = User.objects.create_user(email="bench-power@example.com", password="x" * 20, tier="power")
    categories = [c.value for c in PluginCategory]
    vocabulary = _vocabulary(rng)
    started = time.perf_counter()
    now = timezone.now()
    batch = 5000
    for offset in range(0, count, batch):
        plugins, versions = [], []
        for index in range(offset, min(count, offset + batch)):
            name = f"{_text(rng, vocabulary, 2).title()} {index}"
            description = _text(rng, vocabulary, rng.randint(8, 30))
            plugin = Plugin(
                slug=f"plugin-{index}",
                developer=developer,
                name=name[:80],
                description=description,
                category=rng.choice(categories),
                price_cents=rng.choice([0, 0, 0, 199, 499]),
                status=PluginStatus.LISTED,
                listed_at=now,
                install_count=rng.randint(0, 5000),
                rating_count=rng.randint(0, 50),
                rating_avg=round(rng.uniform(1, 5), 2),
            )
            plugins.append(plugin)
            manifest = {
                "id": plugin.slug,
                "name": plugin.name,
                "description": description,
                "version": "1.0.0",
                "author": "Bench",
                "permissions": ["tasks:read"],
                "category": plugin.category,
                "price_cents": plugin.price_cents,
            }
            versions.append(
                PluginVersion(plugin=plugin, version="1.0.0", manifest=manifest, status=VersionStatus.APPROVED)
            )
        Plugin.objects.bulk_create(plugins)
        PluginVersion.objects.bulk_create(versions)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE marketplace_plugin p SET latest_version_id = v.id FROM marketplace_pluginversion v "
            "WHERE v.plugin_id = p.id"
        )
        # The same weighted vector plugin_search_vector_refresh writes on approval.
        cursor.execute(
            "UPDATE marketplace_plugin SET search_vector = "
            "setweight(to_tsvector(%s::regconfig, coalesce(name, '')), 'A') || "
            "setweight(to_tsvector(%s::regconfig, coalesce(description, '')), 'B') || "
            "setweight(to_tsvector(%s::regconfig, coalesce(category, '')), 'C')",
            [SEARCH_CONFIG] * 3,
        )
        cursor.execute("ANALYZE marketplace_plugin")
    print(f"populated {count} plugins in {time.perf_counter() - started:.1f} s", flush=True)
    return reader


BARE_SQL = """
WITH q AS (SELECT websearch_to_tsquery(%(config)s::regconfig, %(q)s) AS query)
SELECT p.slug, ts_rank(p.search_vector, q.query) AS rank
FROM marketplace_plugin p, q
WHERE p.status = 'listed' AND p.latest_version_id IS NOT NULL AND p.search_vector @@ q.query
ORDER BY rank DESC, p.install_count DESC, p.slug
LIMIT %(limit)s
"""
BARE_COUNT = """
SELECT count(*) FROM marketplace_plugin p
WHERE p.status = 'listed' AND p.latest_version_id IS NOT NULL
  AND p.search_vector @@ websearch_to_tsquery(%(config)s::regconfig, %(q)s)
"""
PER_ROW_SQL = """
WITH q AS (SELECT websearch_to_tsquery(%(config)s::regconfig, %(q)s) AS query)
SELECT p.slug FROM marketplace_plugin p, q
WHERE p.status = 'listed'
  AND to_tsvector(%(config)s::regconfig, p.name || ' ' || p.description || ' ' || p.category) @@ q.query
ORDER BY ts_rank(to_tsvector(%(config)s::regconfig, p.name || ' ' || p.description), q.query) DESC
LIMIT %(limit)s
"""


def run(count: int, reps: int, per_row_reps: int, seed: int) -> None:
    from django.db import connection
    from rest_framework.test import APIClient

    from apps.accounts.tokens import tokens_issue
    from apps.marketplace.transitions import SEARCH_CONFIG

    rng = random.Random(seed)
    reader = _populate(count, rng)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=reader).access_token}")

    def api(q: str) -> int:
        response = client.get("/api/v1/plugins", {"q": q})
        assert response.status_code == 200, response.content
        return response.json()["total"]

    def bare(q: str, sql: str = BARE_SQL, with_count: bool = True) -> int:
        params: dict[str, Any] = {"config": SEARCH_CONFIG, "q": q, "limit": PAGE}
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()
            if not with_count:
                return 0
            cursor.execute(BARE_COUNT, params)
            return cursor.fetchone()[0]

    for q in QUERIES:  # warm caches, and check both paths agree on the totals
        assert api(q) == bare(q), q
    with connection.cursor() as cursor:
        for q in ("time", QUERIES[-3]):  # the most common word, a rare one
            cursor.execute("EXPLAIN " + BARE_SQL, {"config": SEARCH_CONFIG, "q": q, "limit": PAGE})
            plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"plan (bare SQL, {q!r}, {bare(q)} matches):\n  " + plan.replace("\n", "\n  "), flush=True)

    timings: dict[str, list[float]] = {"api": [], "bare": [], "per_row": []}
    for _ in range(reps):
        for q in QUERIES:
            for name, call in (("bare", lambda q=q: bare(q)), ("api", lambda q=q: api(q))):
                started = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - started) * 1000)
    for _ in range(per_row_reps):
        for q in QUERIES:
            started = time.perf_counter()
            bare(q, PER_ROW_SQL, with_count=False)
            timings["per_row"].append((time.perf_counter() - started) * 1000)

    base50, base95 = _percentile(timings["bare"], 0.5), _percentile(timings["bare"], 0.95)
    print(f"\n{count} plugins, {len(QUERIES)} queries x {reps} runs (per-row: x {per_row_reps})")
    for name, label in (
        ("bare", "bare SQL, stored vector + GIN (baseline)"),
        ("api", "GET /api/v1/plugins?q= (whole API)"),
        ("per_row", "bare SQL, to_tsvector per row (no index)"),
    ):
        p50, p95 = _percentile(timings[name], 0.5), _percentile(timings[name], 0.95)
        print(f"  {label:44s} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms  ({p50 / base50:6.2f}x / {p95 / base95:6.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--per-row-reps", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    database_create(BENCH_DB)
    _setup_django()
    try:
        run(args.plugins, args.reps, args.per_row_reps, args.seed)
    finally:
        database_drop(BENCH_DB)


if __name__ == "__main__":
    main()
