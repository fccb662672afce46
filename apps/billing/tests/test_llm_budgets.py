"""Token budgets: the check under concurrency, overrides (admin and command, audited), the usage
view, the nightly roll-up and pruning, the 80 % notice, the staff pages."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Tier
from apps.billing.budgets import (
    llm_budget_of,
    llm_budget_override_set,
    llm_budget_release,
    llm_budget_reserve,
    llm_budgeted,
    llm_usage_notice_due,
)
from apps.billing.metering import (
    LlmAttribution,
    LlmCallRecord,
    LlmCallUsage,
    LlmPurpose,
    llm_usage_record,
    llm_usage_record_many,
)
from apps.billing.models import LlmBudgetOverride, LlmBudgetPeriod, LlmReservation, LlmUsage, LlmUsageDaily
from apps.billing.usage_rollup import llm_usage_roll_up
from apps.core.errors import ApplicationError
from apps.core.models import AuditEvent
from apps.core.testing.threads import run_in_threads

pytestmark = pytest.mark.django_db


def record(user, *, purpose=LlmPurpose.CHAT, prompt=0, completion=0, cached=0, model="gpt-4o-mini", at=None):
    llm_usage_record(
        call_id=uuid.uuid4().hex,
        attribution=LlmAttribution(user_id=user.pk, purpose=purpose, tier=user.tier),
        model=model,
        usage=LlmCallUsage(prompt=prompt, completion=completion, cached=cached),
    )
    if at is not None:
        LlmUsage.objects.filter(user_id=user.pk).order_by("-id").filter(
            id=LlmUsage.objects.filter(user_id=user.pk).order_by("-id").values("id")[:1]
        ).update(created_at=at)


@pytest.fixture
def staff_client(make_user) -> Client:
    admin_user = make_user("admin@example.com", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin_user)
    return client


# --- budgets -----------------------------------------------------------------------------------


def test_tier_budgets_come_from_tiers_and_the_environment_overrides_them(make_user, settings):
    # given
    free, team = make_user(tier=Tier.FREE), make_user(tier=Tier.TEAM)
    # then each team member has the per-seat budget of their own
    assert llm_budget_of(free) == 250_000
    assert llm_budget_of(team) == 10_000_000
    # when the environment overrides the free tier's
    settings.LLM_MONTHLY_TOKENS = {"free": 1234}
    assert llm_budget_of(free) == 1234


def test_a_request_that_starts_with_no_budget_left_is_refused_with_402_and_when_it_renews(user):
    # given a budget of 500 tokens, all used
    llm_budget_override_set(user=user, monthly_tokens=500, actor=None)
    record(user, prompt=450, completion=50)

    # when / then
    with pytest.raises(ApplicationError) as refused:
        llm_budget_reserve(user_id=user.pk, purpose=LlmPurpose.CHAT)
    assert refused.value.status == 402
    body = refused.value.as_dict()
    assert body["code"] == "llm_budget_exhausted"
    assert body["upgrade_tier"] == "pro"
    now = timezone.now()
    first_of_next = (now.replace(day=28) + dt.timedelta(days=4)).replace(day=1).date()
    assert body["resets_at"] == f"{first_of_next:%Y-%m-%d}T00:00:00Z"
    assert LlmReservation.objects.count() == 0


def test_a_holds_commit_does_not_wait_for_the_disk(user):
    # given
    llm_budget_override_set(user=user, monthly_tokens=100_000, actor=None)

    # when
    with CaptureQueriesContext(connection) as queries:
        hold = llm_budget_reserve(user_id=user.pk, purpose=LlmPurpose.CHAT)

    # then its transaction turned synchronous commit off before it took the month's lock
    statements = [query["sql"] for query in queries.captured_queries]
    asynchronous = statements.index("SET LOCAL synchronous_commit TO OFF")
    assert asynchronous < next(i for i, sql in enumerate(statements) if "billing_llmbudgetperiod" in sql)
    assert LlmReservation.objects.filter(id=hold.reservation_id).exists()


def test_a_hold_is_released_when_the_work_ends_even_when_it_fails(user):
    # given
    llm_budget_override_set(user=user, monthly_tokens=100_000, actor=None)

    held_during: list[int] = []

    def failing_work() -> None:
        with llm_budgeted(user_id=user.pk, purpose=LlmPurpose.JOURNEY):
            held_during.append(LlmReservation.objects.filter(user=user).count())
            raise RuntimeError("the model failed")

    # when
    with pytest.raises(RuntimeError):
        failing_work()

    # then
    assert held_during == [1]
    assert LlmReservation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_twenty_racing_requests_overshoot_the_budget_by_at_most_one_requests_use(make_user, settings):
    # given 5,000 tokens left of 100,000 and 20 requests that each use 3,000 (a hold is 8,000)
    user = make_user("racer@example.com")
    llm_budget_override_set(user=user, monthly_tokens=100_000, actor=None)
    record(user, prompt=90_000, completion=5_000)
    per_request = LlmCallUsage(prompt=2_500, completion=500, cached=0)
    start = threading.Barrier(20)
    # Every request decides before any of them has used its tokens: all twenty are in flight at once.
    decided = threading.Barrier(20)
    admitted: list[bool] = []
    refusals: list[str] = []

    def one_request() -> None:
        try:
            start.wait()
            try:
                hold = llm_budget_reserve(user_id=user.pk, purpose=LlmPurpose.CHAT)
            except ApplicationError as exc:
                refusals.append(exc.code)
                admitted.append(False)
                return
            except Exception as exc:
                refusals.append(f"{type(exc).__name__}: {exc}")  # reported by the assertions
                admitted.append(False)
                return
            finally:
                connection.close()  # back to the pool: twenty waiting requests must not hold them all
                decided.wait(timeout=60)
            try:
                llm_usage_record(
                    call_id=uuid.uuid4().hex, attribution=hold.attribution, model="gpt-4o-mini", usage=per_request
                )
                admitted.append(True)
            finally:
                llm_budget_release(hold=hold)
        finally:
            connection.close()

    # when
    run_in_threads(one_request, 20)

    # then some got through, the rest were refused, and the budget is overshot by less than one request
    used = LlmBudgetPeriod.objects.get(user=user).used_tokens
    assert len(admitted) == 20
    assert admitted.count(True) == 1  # the first hold (8,000) covers the 5,000 left
    assert set(refusals) == {"llm_budget_exhausted"}
    assert used == 95_000 + 3_000 * admitted.count(True)
    assert used < 100_000 + per_request.total
    assert LlmReservation.objects.count() == 0


def test_usage_notice_is_due_once_per_period_past_80_percent(user):
    # given
    llm_budget_override_set(user=user, monthly_tokens=1_000, actor=None)
    record(user, prompt=700, completion=50)
    assert llm_usage_notice_due(user_id=user.pk) is None

    # when the user crosses 80 %
    record(user, prompt=60, completion=0)
    notice = llm_usage_notice_due(user_id=user.pk)

    # then once, and not again this period
    assert notice is not None
    assert (notice.used, notice.budget) == (810, 1_000)
    assert llm_usage_notice_due(user_id=user.pk) is None


@pytest.mark.django_db(transaction=True)
def test_racing_turns_past_80_percent_are_told_once(make_user):
    # given a month past 80 % and eight turns ending at once, each asking whether a notice is due
    user = make_user("notice-racer@example.com")
    llm_budget_override_set(user=user, monthly_tokens=1_000, actor=None)
    record(user, prompt=900, completion=0)
    start = threading.Barrier(8)
    notices = []

    def turn_ends() -> None:
        try:
            start.wait(timeout=30)
            notices.append(llm_usage_notice_due(user_id=user.pk, budget=1_000))
        finally:
            connection.close()

    # when
    run_in_threads(turn_ends, 8)

    # then exactly one of them tells, and the month is marked
    told = [n for n in notices if n is not None]
    assert len(notices) == 8
    assert [(n.used, n.budget) for n in told] == [(900, 1_000)]
    assert LlmBudgetPeriod.objects.get(user=user).notified_at is not None


def test_the_same_call_recorded_twice_counts_once(user):
    attribution = LlmAttribution(user_id=user.pk, purpose=LlmPurpose.CHAT)
    usage = LlmCallUsage(prompt=10, completion=5, cached=0)

    assert llm_usage_record(call_id="call-1", attribution=attribution, model="m", usage=usage) is True
    assert llm_usage_record(call_id="call-1", attribution=attribution, model="m", usage=usage) is False

    assert LlmUsage.objects.count() == 1
    assert LlmBudgetPeriod.objects.get(user=user).used_tokens == 15


def test_a_batch_of_calls_is_recorded_per_call_and_a_call_recorded_before_counts_once(user, make_user):
    # given one call already recorded, and a second user in the same batch
    other = make_user("bob@example.com")
    mine = LlmAttribution(user_id=user.pk, purpose=LlmPurpose.AGENT_EXTRACTION, run_id="run-1")
    theirs = LlmAttribution(user_id=other.pk, purpose=LlmPurpose.CHAT)
    llm_usage_record(call_id="call-1", attribution=mine, model="m", usage=LlmCallUsage(10, 5, 0))

    # when a batch holds it again, two new calls of the user (one of them twice) and one of the other user
    answers = llm_usage_record_many(
        records=[
            LlmCallRecord("call-1", mine, "m", LlmCallUsage(10, 5, 0)),
            LlmCallRecord("call-2", mine, "m", LlmCallUsage(100, 20, 50)),
            LlmCallRecord("call-3", mine, "m", LlmCallUsage(7, 3, 0), estimated=True),
            LlmCallRecord("call-3", mine, "m", LlmCallUsage(7, 3, 0), estimated=True),
            LlmCallRecord("call-4", theirs, "m", LlmCallUsage(1, 1, 0)),
        ]
    )

    # then each call is one row, counted once on its own user's month
    assert answers == [False, True, True, False, True]
    rows = {r.call_id: r for r in LlmUsage.objects.all()}
    assert sorted(rows) == ["call-1", "call-2", "call-3", "call-4"]
    assert (rows["call-2"].purpose, rows["call-2"].run_id, rows["call-2"].cached_tokens) == (
        "agent_extraction",
        "run-1",
        50,
    )
    assert rows["call-3"].estimated is True
    assert LlmBudgetPeriod.objects.get(user=user).used_tokens == 15 + 120 + 10
    assert LlmBudgetPeriod.objects.get(user=other).used_tokens == 2
    assert llm_usage_record_many(records=[]) == []


# --- overrides -----------------------------------------------------------------------------------


def test_llm_budget_command_sets_and_clears_an_override_with_an_audit_row(user, capsys):
    # when
    call_command("llm_budget", "ALICE@example.com", "--monthly-tokens", "42000")

    # then
    assert LlmBudgetOverride.objects.get(user=user).monthly_tokens == 42_000
    assert "42000 tokens per month" in capsys.readouterr().out
    event = AuditEvent.objects.get(action="llm_budget.overridden")
    assert (event.subject_user_id, event.data["before"], event.data["after"]) == (user.pk, None, 42_000)

    # when cleared
    call_command("llm_budget", user.email, "--tier")

    # then
    assert not LlmBudgetOverride.objects.exists()
    assert llm_budget_of(user) == 250_000
    assert AuditEvent.objects.filter(action="llm_budget.overridden").count() == 2


def test_admin_override_goes_through_the_audited_service(staff_client, user):
    # when
    response = staff_client.post(
        "/admin/billing/llmbudgetoverride/add/", {"user": str(user.pk), "monthly_tokens": "777"}
    )

    # then
    assert response.status_code == 302
    assert llm_budget_of(user) == 777
    event = AuditEvent.objects.get(action="llm_budget.overridden")
    assert event.actor.email == "admin@example.com"
    assert event.data["after"] == 777


# --- the usage view, roll-up and pruning --------------------------------------------------------


def test_usage_endpoint_reports_the_callers_month_by_purpose_and_day(user, make_user, auth_client):
    # given this month's calls of alice, and bob's
    record(user, purpose=LlmPurpose.CHAT, prompt=1000, completion=200, cached=300)
    record(user, purpose=LlmPurpose.SUBAGENT, prompt=500, completion=50)
    record(user, purpose=LlmPurpose.EMBEDDING, prompt=7)
    record(make_user("bob@example.com"), prompt=99_999)
    period = f"{timezone.now():%Y-%m}"

    # when
    response = auth_client.get(f"/api/v1/billing/usage?period={period}")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["period"] == period
    assert body["budget"] == 250_000
    assert body["used"] == {"prompt": 1507, "completion": 250, "cached": 300, "total": 1757}
    assert body["remaining"] == 250_000 - 1757
    assert body["by_purpose"]["chat"] == {"prompt": 1000, "completion": 200, "cached": 300, "total": 1200}
    assert body["by_purpose"]["subagent"]["total"] == 550
    assert body["by_purpose"]["embedding"]["total"] == 7
    assert body["by_day"] == [
        {"day": f"{timezone.now():%Y-%m-%d}", "prompt": 1507, "completion": 250, "cached": 300, "total": 1757}
    ]


@pytest.mark.parametrize("period", ["2026-13", "26-01", "soon", "2026-1"])
def test_usage_endpoint_refuses_a_malformed_period_with_400(auth_client, period):
    response = auth_client.get(f"/api/v1/billing/usage?period={period}")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_usage_endpoint_needs_authentication(api_client):
    assert api_client.get("/api/v1/billing/usage").status_code == 401


def test_roll_up_sums_finished_days_and_pruning_keeps_the_totals(user, settings):
    # given calls on three days of last month (UTC), two of them past the retention
    settings.LLM_USAGE_RETENTION_DAYS = 10
    now = dt.datetime(2026, 4, 20, 12, tzinfo=dt.UTC)
    for day, prompt in ((2, 100), (2, 11), (3, 200), (19, 300)):
        record(user, prompt=prompt, completion=1, at=dt.datetime(2026, 4, day, 9, tzinfo=dt.UTC))
    record(user, purpose=LlmPurpose.EMBEDDING, prompt=5, at=dt.datetime(2026, 4, 2, 10, tzinfo=dt.UTC))
    from apps.billing.usage_report import llm_usage_report

    before = llm_usage_report(user=user, period=dt.date(2026, 4, 1))

    # when rolled up (twice: it is idempotent)
    llm_usage_roll_up(now=now)
    result = llm_usage_roll_up(now=now)

    # then the days before the 10th are pruned, the 19th is kept raw, and nothing changed in the totals
    daily = {(r.day.day, r.purpose): (r.calls, r.prompt_tokens) for r in LlmUsageDaily.objects.all()}
    assert daily == {(2, "chat"): (2, 111), (2, "embedding"): (1, 5), (3, "chat"): (1, 200), (19, "chat"): (1, 300)}
    assert result.raw_rows_pruned == 0  # pruned by the first run already
    assert sorted(r.created_at.day for r in LlmUsage.objects.all()) == [19]
    after = llm_usage_report(user=user, period=dt.date(2026, 4, 1))
    assert after["used"] == before["used"] == {"prompt": 616, "completion": 4, "cached": 0, "total": 620}
    assert after["by_day"] == before["by_day"]


def test_roll_up_is_registered_with_celery_beat():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="billing.llm_usage_roll_up")
    assert task.enabled
    assert task.crontab is not None


# --- staff pages --------------------------------------------------------------------------------


def test_staff_see_top_users_with_estimated_cost_and_a_users_month(staff_client, user, make_user):
    # given
    record(user, prompt=1_000_000, completion=100_000, model="gpt-4o-mini")
    record(make_user("bob@example.com"), prompt=10, completion=1)
    llm_usage_roll_up(now=timezone.now() + dt.timedelta(days=1))

    # when
    top = staff_client.get("/admin/billing/llmbudgetperiod/")
    daily = staff_client.get("/admin/billing/llmusagedaily/")
    month = staff_client.get(f"/admin/billing/llmbudgetperiod/month/{user.pk}/")

    # then alice comes first, and 1M prompt + 100k completion tokens of gpt-4o-mini cost 0.15 + 0.06 USD
    assert top.status_code == daily.status_code == month.status_code == 200
    page = top.content.decode()
    assert page.index("alice@example.com") < page.index("bob@example.com")
    assert "0.2100" in page
    assert "0.2100" in daily.content.decode()
    assert '<tr class="llm-purpose"><th>chat</th><td>1000000</td><td>100000</td><td>0</td><td>1100000</td></tr>' in (
        month.content.decode()
    )


def test_staff_see_a_teams_usage_for_a_period(staff_client, user, make_user):
    # given a team of alice and carol, and bob outside it, each with some use this month
    from apps.teams.services import team_create

    team = team_create(user=user, name="Agency")
    carol = make_user("carol@example.com")
    team.memberships.create(user=carol, role="member")
    for member in (user, carol, make_user("bob@example.com")):
        record(member, prompt=100, completion=10)

    # when staff filter the month's usage by the team
    page = staff_client.get(f"/admin/billing/llmbudgetperiod/?team={team.id}")

    # then its members are listed with the team, and nobody else
    assert page.status_code == 200
    body = page.content.decode()
    assert "alice@example.com" in body
    assert "carol@example.com" in body
    assert "bob@example.com" not in body
    assert "Agency" in body


# --- metrics ------------------------------------------------------------------------------------


def test_metered_tokens_cost_and_refusals_reach_prometheus(client, settings, user):
    from prometheus_client.parser import text_string_to_metric_families

    settings.METRICS_TOKEN = "metrics-test-token-0123456789"

    def scrape() -> dict:
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-test-token-0123456789")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
        }

    labels = (("model", "gpt-4o-mini"), ("purpose", "journey"), ("tier", "free"))
    before = scrape()

    # when a call of 1M prompt tokens (200k cached) and 100k completion tokens is recorded, then one refused
    record(user, purpose=LlmPurpose.JOURNEY, prompt=1_000_000, completion=100_000, cached=200_000)
    llm_budget_override_set(user=user, monthly_tokens=1, actor=None)
    with pytest.raises(ApplicationError):
        llm_budget_reserve(user_id=user.pk, purpose=LlmPurpose.JOURNEY)
    after = scrape()

    # then
    def grew(name: str, extra: tuple = ()) -> float:
        key = (name, tuple(sorted(labels + extra)))
        return round(after.get(key, 0.0) - before.get(key, 0.0), 6)

    assert grew("adiuva_llm_tokens_total", (("kind", "prompt"),)) == 1_000_000
    assert grew("adiuva_llm_tokens_total", (("kind", "cached"),)) == 200_000
    assert grew("adiuva_llm_tokens_total", (("kind", "completion"),)) == 100_000
    # (800k x 0.15 + 200k x 0.075 + 100k x 0.60) per million = 0.12 + 0.015 + 0.06
    assert grew("adiuva_llm_estimated_cost_usd_total") == 0.195
    refusals = ("adiuva_llm_budget_refusals_total", (("purpose", "journey"), ("tier", "free")))
    assert after.get(refusals, 0.0) - before.get(refusals, 0.0) == 1
