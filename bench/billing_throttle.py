"""Per-tier rate limit cost: TierRateThrottle (fixed window, one Redis counter) against DRF's
UserRateThrottle (a list of every request time, rewritten per request), same Redis, same run.

    .venv/bin/python bench/billing_throttle.py [--seats 50]
    ADIUVA_BENCH_CODE=/tmp/old .venv/bin/python bench/billing_throttle.py   # an older checkout's code

For 100 free users (20/min each) and a team member of ``--seats`` seats (200/min: each member has
the team tier's own budget, never pooled over seats), each throttle admits a whole minute's budget
from an empty window; the figure is the mean time per admitted request (median of interleaved
rounds), printed as a ratio to DRF's. Needs only the embedded Redis (no database).
ADIUVA_BENCH_CODE measures another checkout's throttle with this harness (old → new: run both,
alternating, and compare the ratios to DRF, which each run measures beside its throttle).

2026-12-06, the throttle's script moved from a private attribute of Django's cache backend to a
client of its own (``core.redis_pool.cache_redis``). 7361c05 vs new, 5 alternating runs of 3 rounds
each, load 7-9, medians of the runs' tier / DRF ratios: free 0.20 → 0.20, team 0.18 → 0.18 (single
runs 0.08-0.28: the box was busy). In one process, 7 interleaved rounds (twice): finding the script
1.5 → 0.4 µs CPU per hit, a whole hit with its round trip 1.03x / 0.99x of before. (Before this
change the team scenario asked a member for the whole team's budget, which the throttle, per member,
refuses: it stopped with an assertion.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(os.environ.get("ADIUVA_BENCH_CODE") or ROOT).resolve()))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
os.environ.setdefault("ADIUVA_TEST_RUN", "billing")  # Redis dbs no other tag in use maps to

import django  # noqa: E402

django.setup()

from django.core.cache import cache  # noqa: E402
from django.test import override_settings  # noqa: E402
from rest_framework.throttling import UserRateThrottle  # noqa: E402

from apps.billing import tiers  # noqa: E402
from apps.billing.selectors import seats_cache_key  # noqa: E402
from apps.billing.throttles import TierRateThrottle  # noqa: E402


class BenchUser:
    is_authenticated = True

    def __init__(self, pk: str, tier: str) -> None:
        self.pk = self.id = pk
        self.tier = tier


class BenchRequest:
    def __init__(self, user: BenchUser) -> None:
        self.user = user
        self.META = {"REMOTE_ADDR": "127.0.0.1"}


def drf_throttle(budget: int) -> UserRateThrottle:
    class Throttle(UserRateThrottle):
        rate = f"{budget}/min"

    return Throttle()


def run(make, users: list[BenchUser], budget: int, seats: int) -> float:
    """Mean seconds per admitted request while every user spends a whole minute's budget."""
    cache.clear()
    for user in users:
        cache.set(seats_cache_key(user.pk), seats, 300)  # as seats_for_user leaves it cached
    admitted, start = 0, time.perf_counter()
    for user in users:
        request = BenchRequest(user)
        for _ in range(budget):
            admitted += make().allow_request(request, None)  # a new throttle per request, as DRF does
    elapsed = time.perf_counter() - start
    assert admitted == budget * len(users), (admitted, budget)
    return elapsed / admitted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"median of {args.rounds} interleaved rounds; mean time per admitted request")
    print("scenario               budget/min   tier throttle   DRF UserRateThrottle   ratio (tier / DRF)")
    with override_settings(BILLING_RATE_LIMIT_SCALE=1):
        scenarios = [("free, 100 users", "free", 1, 100), (f"team x{args.seats} seats", "team", args.seats, 1)]
        for label, tier, seats, count in scenarios:
            users = [BenchUser(f"bench-{tier}-{n}", tier) for n in range(count)]
            budget = tiers.FEATURES[tier][tiers.Feature.REQUESTS_PER_MINUTE]  # per member, whatever the seats
            mine, theirs = [], []
            for _ in range(args.rounds):
                mine.append(run(TierRateThrottle, users, budget, seats))
                theirs.append(run(lambda b=budget: drf_throttle(b), users, budget, seats))
            ours_s, drf_s = statistics.median(mine), statistics.median(theirs)
            figures = f"{ours_s * 1e6:>10.0f} us   {drf_s * 1e6:>17.0f} us   {ours_s / drf_s:>14.2f}"
            print(f"{label:<22} {budget:>10}   {figures}")
    cache.clear()


if __name__ == "__main__":
    main()
