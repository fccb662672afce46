"""Agent scheduler benchmark: one dispatch tick over 100,000 enabled configs vs a bare due-id SELECT,
and the rejected design (one django-celery-beat PeriodicTask per config).

Runs in its own database (``bench_agents`` on the same PostgreSQL server, dropped at the end)
with the real agents tables and the real ``agents_dispatch_due`` service (claim with
``FOR UPDATE SKIP LOCKED``, bulk insert of runs, bulk advance of ``next_run_at``, one device
presence query per batch, Celery messages queued to the embedded Redis after commit).

* 100,000 enabled configs (half local, half cloud) of 10,000 users in five time zones, with
  daily schedules spread over the day (about 66 due a minute), plus a peak of 5,000 configs
  due at 09:00 UTC; 80 % of users have their device online (the rest wait for their device).
* A fake clock advances through a window around the peak; the tick runs every 10 s of
  simulated time (``now`` is passed in, time is never mocked globally). Before each tick, the
  baseline: ``SELECT id … WHERE enabled AND next_run_at <= now`` on both tables (the bare read
  every design has to do).
* Dispatch lag per run = (simulated tick time - due minute) + the real time from the tick's
  start until the batch holding the run committed (the run row exists from then).
* RSS: this process (which runs the tick) before/after the window; a real ``celery beat``
  with the DatabaseScheduler and the project's periodic tasks; then the rejected alternative:
  10,000 PeriodicTask rows (one crontab per config): in-process DatabaseScheduler load and
  tick time, and a real ``celery beat`` process's RSS.

    .venv/bin/python bench/agent_scheduler.py                 # full run (~5-8 min on 2 cores)
    .venv/bin/python bench/agent_scheduler.py --configs 20000 --window 10 --peak 1000 --per-task 2000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench_db import database_create, database_drop, server_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "bench_agents"
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
UTC = dt.UTC
TICK_SECONDS = 10
TICK_PHASE = 3.7  # beat ticks are not aligned to the minute


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = server_url(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
    os.environ.setdefault("ADIUVA_TEST_RUN", "bench_agents")  # its own Redis databases (broker)
    import django

    django.setup()
    from django.conf import settings

    settings.DATABASES["default"]["OPTIONS"] = {}  # one plain connection


def _rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _populate(*, configs: int, peak: int, users: int, start: dt.datetime, rng: random.Random) -> None:
    from django.core.management import call_command
    from django.db import connection

    from apps.agents.schedules import next_run_after

    t0 = time.perf_counter()
    call_command("migrate", "accounts", verbosity=0)
    call_command("migrate", "agents", verbosity=0)
    call_command("migrate", "devices", verbosity=0)
    user_ids = [uuid.uuid4() for _ in range(users)]
    zones = {uid: (ZONES[i % len(ZONES)] if i >= users // 10 else "UTC") for i, uid in enumerate(user_ids)}
    utc_users = [uid for uid in user_ids if zones[uid] == "UTC"]
    now = dt.datetime.now(UTC)
    memo: dict[tuple[str, str], dt.datetime] = {}

    def due(cron: str, zone: str) -> dt.datetime:
        if (cron, zone) not in memo:
            memo[(cron, zone)] = next_run_after(expression=cron, time_zone=zone, after=start - dt.timedelta(seconds=1))
        return memo[(cron, zone)]

    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY accounts_user (id, created_at, updated_at, password, email, is_active, is_staff, is_superuser, "
            "tier, time_zone) FROM STDIN"
        ) as copy:
            for i, uid in enumerate(user_ids):
                copy.write_row((uid, now, now, "!", f"u{i}@bench.example", True, False, False, "power", zones[uid]))
        online_users = rng.sample(user_ids, int(users * 0.8))
        with cursor.cursor.copy(
            "COPY devices_device (id, created_at, updated_at, user_id, device_id, name, platform, agent_ids, "
            "first_seen_at, last_seen_at, is_online, channel_name, lease_expires_at) FROM STDIN"
        ) as copy:
            lease = now + dt.timedelta(days=1)
            for uid in online_users:
                copy.write_row((uuid.uuid4(), now, now, uid, "laptop", "", "", "[]", now, now, True, "x", lease))

        def rows(count: int, *, peak_rows: bool):
            for _ in range(count):
                uid = rng.choice(utc_users) if peak_rows else rng.choice(user_ids)
                cron = "0 9 * * *" if peak_rows else f"{rng.randrange(60)} {rng.randrange(24)} * * *"
                yield uid, cron, due(cron, zones[uid])

        spread = configs - peak
        for table, count_spread, count_peak in (
            ("local", spread // 2, peak // 2),
            ("cloud", spread - spread // 2, peak - peak // 2),
        ):
            if table == "local":
                sql = (
                    "COPY agents_localagentconfig (id, created_at, updated_at, name, data_types, prompt_template, "
                    "schedule_cron, enabled, next_run_at, user_id, device_id, directory_paths, file_extensions) "
                    "FROM STDIN"
                )
            else:
                sql = (
                    "COPY agents_cloudagentconfig (id, created_at, updated_at, name, data_types, prompt_template, "
                    "schedule_cron, enabled, next_run_at, user_id, provider, filter_config, sync_cursor) FROM STDIN"
                )
            with cursor.cursor.copy(sql) as copy:
                for peak_rows, count in ((False, count_spread), (True, count_peak)):
                    for uid, cron, next_at in rows(count, peak_rows=peak_rows):
                        common = (uuid.uuid4(), now, now, "bench", '["tasks"]', "", cron, True, next_at, uid)
                        extra = ("laptop", '["/x"]', '[".txt"]') if table == "local" else ("gmail", "{}", "{}")
                        copy.write_row(common + extra)
        cursor.execute("ANALYZE")
    print(f"populated {configs:,} configs of {users:,} users in {time.perf_counter() - t0:.1f} s")


def _baseline_ms(now: dt.datetime) -> tuple[float, int]:
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        n = 0
        for table in ("agents_localagentconfig", "agents_cloudagentconfig"):
            cursor.execute(f"SELECT id FROM {table} WHERE enabled AND next_run_at <= %s", [now])
            n += len(cursor.fetchall())
    return (time.perf_counter() - t0) * 1000, n


def _run_window(*, start: dt.datetime, minutes: int) -> dict:
    from apps.agents import dispatch
    from apps.agents.models import AgentRunLog

    # Measurement only: note the real time at which each batch committed (its runs exist from then).
    committed: list[tuple[float, list]] = []
    real_batch = dispatch._dispatch_batch

    def timed_batch(**kwargs):
        result = real_batch(**kwargs)
        committed.append((time.perf_counter(), result.run_ids))
        return result

    dispatch._dispatch_batch = timed_batch
    lags: list[float] = []
    peak_lags: list[float] = []
    ordinary_lags: list[float] = []
    ticks: list[tuple[float, float, int]] = []  # (tick ms, baseline ms, configs claimed)
    peak_tick: tuple[float, float, int] | None = None
    waiting = 0
    rss_before = _rss_kib()
    sim = start + dt.timedelta(seconds=TICK_PHASE)
    end = start + dt.timedelta(minutes=minutes)
    try:
        while sim < end:
            base_ms, _ = _baseline_ms(sim)
            committed.clear()
            t0 = time.perf_counter()
            result = dispatch.agents_dispatch_due(now=sim)
            tick_s = time.perf_counter() - t0
            waiting += result.waiting_for_device
            for at, run_ids in committed:
                if not run_ids:
                    continue
                scheduled = AgentRunLog.objects.filter(id__in=run_ids).values_list("scheduled_for", flat=True)
                batch_lags = [(sim - due_at).total_seconds() + (at - t0) for due_at in scheduled if due_at]
                lags.extend(batch_lags)
                (peak_lags if result.claimed > 1000 else ordinary_lags).extend(batch_lags)
            if result.claimed:
                ticks.append((tick_s * 1000, base_ms, result.claimed))
                if peak_tick is None or result.claimed > peak_tick[2]:
                    peak_tick = (tick_s * 1000, base_ms, result.claimed)
            sim += dt.timedelta(seconds=max(TICK_SECONDS, tick_s))
    finally:
        dispatch._dispatch_batch = real_batch
    return {
        "lags": lags,
        "peak_lags": peak_lags,
        "ordinary_lags": ordinary_lags,
        "ticks": ticks,
        "peak_tick": peak_tick,
        "waiting": waiting,
        "rss_before": rss_before,
        "rss_after": _rss_kib(),
    }


def _beat_rss(seconds: float) -> tuple[int, int]:
    """Run the real celery beat (DatabaseScheduler) against the bench database; RSS at 3 s and its peak."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "adiuva.settings.test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "adiuva",
            "beat",
            "--loglevel=WARNING",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--pidfile=",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    early = peak = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(1)
            rss = _rss_kib(process.pid)
            early = early or (rss if time.monotonic() - started >= 3 else 0)
            peak = max(peak, rss)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # busy loading its schedule: it ignores SIGTERM until done
            process.kill()
            process.wait()
    return early, peak


def _per_config_tasks(count: int, rng: random.Random) -> float:
    """The rejected design: one PeriodicTask (crontab in the user's zone) per config; returns seconds to create."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    t0 = time.perf_counter()
    crontabs = []
    for i in range(count):
        zone = ZONES[i % len(ZONES)]
        if i % 2:  # daily at a random minute
            fields = {"minute": str(rng.randrange(60)), "hour": str(rng.randrange(24))}
        else:  # every N minutes / every few hours
            fields = rng.choice(
                [{"minute": f"*/{rng.choice([5, 10, 15, 30])}", "hour": "*"}, {"minute": "0", "hour": "*/6"}]
            )
        crontabs.append(CrontabSchedule(**fields, day_of_week="*", day_of_month="*", month_of_year="*", timezone=zone))
    CrontabSchedule.objects.bulk_create(crontabs, batch_size=2000)
    PeriodicTask.objects.bulk_create(
        [
            PeriodicTask(
                name=f"agent {uuid.uuid4()}", task="bench.agent_run", crontab=crontab, args=f'["{uuid.uuid4()}"]'
            )
            for crontab in crontabs
        ],
        batch_size=2000,
    )
    from django_celery_beat.models import PeriodicTasks

    PeriodicTasks.update_changed()
    return time.perf_counter() - t0


def _scheduler_in_process() -> tuple[float, float, float, int]:
    """A DatabaseScheduler in this process: (initial load s, steady tick s, full re-read s, entries).

    A full re-read happens on every change to any PeriodicTask (with one per config: every
    config edit anywhere) and at least every 5 minutes.
    """
    from django_celery_beat.schedulers import DatabaseScheduler

    from adiuva.celery import app

    t0 = time.perf_counter()
    scheduler = DatabaseScheduler(app=app)
    entries = len(scheduler.schedule)
    load = time.perf_counter() - t0
    scheduler.tick()
    durations = []
    for _ in range(5):
        t0 = time.perf_counter()
        scheduler.tick()
        durations.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    scheduler.all_as_schedule()
    reread = time.perf_counter() - t0
    scheduler._finalize.cancel()  # its exit-time sync would run after the bench database is dropped
    return load, statistics.median(durations), reread, entries


def _purge_broker() -> None:
    from adiuva.celery import app

    try:
        app.control.purge()
    except Exception as exc:
        print(f"(could not purge the broker: {exc})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--peak", type=int, default=5_000, help="configs due at 09:00 UTC")
    parser.add_argument("--window", type=int, default=30, help="simulated minutes (centred on the peak)")
    parser.add_argument("--per-task", type=int, default=10_000, help="PeriodicTask rows of the rejected design")
    parser.add_argument("--beat-seconds", type=float, default=40.0)
    options = parser.parse_args()
    rng = random.Random(7)

    from adiuva import embedded

    embedded.ensure_environment()
    database_create(BENCH_DB)
    _setup_django()
    try:
        peak_at = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
        start = peak_at - dt.timedelta(minutes=options.window // 2)
        _populate(configs=options.configs, peak=options.peak, users=options.users, start=start, rng=rng)

        window = _run_window(start=start, minutes=options.window)
        lags, ticks = window["lags"], window["ticks"]
        tick_ms = [t[0] for t in ticks]
        ordinary = [t for t in ticks if t is not window["peak_tick"]]
        rows_per_s = sum(t[2] for t in ticks) / (sum(tick_ms) / 1000) if ticks else 0.0
        print(
            f"\n{options.configs:,} enabled configs; {options.window} simulated minutes, a tick every {TICK_SECONDS} s"
        )
        print(f"runs created: {len(lags):,}; due but device offline (owed, not failed): {window['waiting']:,}")
        print(
            f"dispatch lag, all runs: p50 {_pct(lags, 0.5):.2f} s, p99 {_pct(lags, 0.99):.2f} s, "
            f"max {max(lags, default=0):.2f} s (target: < 60 s)"
        )
        ordinary_lags = window["ordinary_lags"]
        print(
            f"  ordinary minutes: p50 {_pct(ordinary_lags, 0.5):.2f} s, p99 {_pct(ordinary_lags, 0.99):.2f} s; "
            f"peak minute: p50 {_pct(window['peak_lags'], 0.5):.2f} s, p99 {_pct(window['peak_lags'], 0.99):.2f} s "
            f"(lag = tick phase {TICK_PHASE} s + real time until the run's batch committed)"
        )
        if ordinary:
            o_tick = statistics.median(t[0] for t in ordinary)
            o_base = statistics.median(t[1] for t in ordinary)
            o_rows = statistics.median(t[2] for t in ordinary)
            print(
                f"ordinary tick (median, {o_rows:.0f} due): {o_tick:.1f} ms vs bare due-id SELECT {o_base:.2f} ms "
                f"= {o_tick / o_base:.0f}x"
            )
        if window["peak_tick"]:
            p_tick, p_base, p_rows = window["peak_tick"]
            print(
                f"peak tick ({p_rows:,} due): {p_tick:.0f} ms vs bare SELECT {p_base:.1f} ms = {p_tick / p_base:.0f}x; "
                f"{p_rows / (p_tick / 1000):,.0f} configs/s"
            )
        print(f"all ticks with work: {rows_per_s:,.0f} configs dispatched per second of tick time")
        print(
            f"tick process RSS: {window['rss_before'] / 1024:.0f} MiB before, "
            f"{window['rss_after'] / 1024:.0f} MiB after"
        )
        _purge_broker()

        early, late = _beat_rss(options.beat_seconds)
        print(
            f"celery beat (DatabaseScheduler, project tasks only): RSS {early / 1024:.0f} MiB at 3 s, "
            f"peak {late / 1024:.0f} MiB over {options.beat_seconds:.0f} s"
        )
        load, tick, reread, entries = _scheduler_in_process()
        print(
            f"  in-process DatabaseScheduler: {entries} entries, load {load * 1000:.0f} ms, tick {tick * 1000:.2f} ms, "
            f"re-read {reread * 1000:.1f} ms"
        )

        created = _per_config_tasks(options.per_task, rng)
        rss0 = _rss_kib()
        load_n, tick_n, reread_n, entries_n = _scheduler_in_process()
        rss1 = _rss_kib()
        print(f"\nrejected: one PeriodicTask per config ({options.per_task:,} rows, created in {created:.1f} s)")
        print(
            f"  in-process DatabaseScheduler: {entries_n:,} entries loaded (crontab hour window), load {load_n:.2f} s "
            f"({load_n / load:.0f}x), tick {tick_n * 1000:.2f} ms, full re-read {reread_n:.2f} s "
            f"({reread_n / max(reread, 1e-6):.0f}x), +{(rss1 - rss0) / 1024:.0f} MiB in this process"
        )
        early_n, late_n = _beat_rss(options.beat_seconds)
        print(
            f"  celery beat RSS: {early_n / 1024:.0f} MiB at 3 s, "
            f"peak {late_n / 1024:.0f} MiB over {options.beat_seconds:.0f} s "
            f"({late_n / max(late, 1):.2f}x the beat without per-config tasks)"
        )
        _purge_broker()
    finally:
        database_drop(BENCH_DB)


if __name__ == "__main__":
    main()
