"""The runs list (``GET agents/runs``) at a user's size: its ``X-Total-Count`` read from the runs'
tallies (``run_count``) against the count of the runs it replaced, and the page of all the user's
runs by its (user, started_at) index, for a user with 20 runs and one with ``--runs`` (one agent
each), same run.

    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/run_list_size.py [--runs 20000] [--rounds 5]

Each round times each call back to back (median of 30 calls after 5 to warm up), the table
analyzed and vacuumed first, as autovacuum keeps it in production.
"""

from __future__ import annotations

import argparse
import statistics
import uuid

from device_common import make_users, setup_django
from page_timing import median_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20_000)
    args = parser.parse_args()
    setup_django(migrate=True)
    from django.db import connection

    from apps.accounts.models import User
    from apps.agents.models import AgentRunLog
    from apps.agents.selectors import run_count, run_list

    ((small_id, _),) = make_users(1, prefix="runsize-small")
    ((big_id, _),) = make_users(1, prefix="runsize-big")
    users = {}
    for user_id, n in ((small_id, 20), (big_id, args.runs)):
        user = User.objects.get(pk=user_id)
        agent_id = AgentRunLog.objects.filter(user=user).values_list("agent_id", flat=True).first() or uuid.uuid4()
        have = AgentRunLog.objects.filter(user=user).count()
        AgentRunLog.objects.bulk_create(
            (AgentRunLog(user=user, agent_id=agent_id, agent_type="local", status="success") for _ in range(have, n)),
            batch_size=5_000,
        )
        users[n] = (user, agent_id)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE agents_agentrunlog")

    results: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.rounds):
        for n, (user, agent_id) in users.items():
            runs = AgentRunLog.objects  # run_list's filters, without its check that the agent exists
            calls = {
                "count of the agent's runs (before)": lambda: runs.filter(user=user, agent_id=agent_id).count(),  # noqa: B023
                "tally of the agent (now)": lambda: run_count(user=user, agent_id=agent_id),  # noqa: B023
                "count of all runs (before)": lambda: run_list(user=user).count(),  # noqa: B023
                "tallies of all agents (now)": lambda: run_count(user=user),  # noqa: B023
                "first page of all runs, 50": lambda: list(run_list(user=user)[:50]),  # noqa: B023
            }
            assert calls["count of all runs (before)"]() == calls["tallies of all agents (now)"]() == n
            for name, call in calls.items():
                results.setdefault((n, name), []).append(median_ms(call))
    print(f"{args.rounds} rounds, median ms of each round's median wall time")
    for n in users:
        for name in ("count of the agent's runs (before)", "count of all runs (before)", "first page of all runs, 50"):
            before = statistics.median(results[(n, name)])
            if "before" in name:
                now_name = "tally of the agent (now)" if "agent's" in name else "tallies of all agents (now)"
                now = statistics.median(results[(n, now_name)])
                print(f"  {n:>6} runs  {name:36} {before:7.2f} ms → {now_name} {now:6.2f} ms   {before / now:6.1f}x")
            else:
                print(f"  {n:>6} runs  {name:36} {before:7.2f} ms")


if __name__ == "__main__":
    main()
