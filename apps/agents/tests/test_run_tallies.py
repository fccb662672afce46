"""The runs' tallies (``AgentRunTally``), kept by PostgreSQL's triggers on every insert and delete of
a run: the runs list's ``X-Total-Count`` reads them, never a count of the runs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.models import AgentRunLog, AgentRunTally, RunStatus, RunTrigger
from apps.agents.runs import run_finish, run_start
from apps.agents.selectors import run_count
from apps.core.testing.migration_steps import migration_steps

from .conftest import make_cloud, make_local

pytestmark = pytest.mark.django_db

BEFORE = ("agents", "0009_outbox_delivering_node")
TALLIED = ("agents", "0011_run_list_index")


def _tallied(user) -> dict:
    return {t.agent_id: t.runs for t in AgentRunTally.objects.filter(user=user) if t.runs}


def _counted(user) -> dict:
    counts: dict = {}
    for agent_id in AgentRunLog.objects.filter(user=user).values_list("agent_id", flat=True):
        counts[agent_id] = counts.get(agent_id, 0) + 1
    return counts


def test_runs_started_finished_and_deleted_keep_each_agents_tally(pro_user, make_user):
    other = make_user("other@example.com", tier="pro")
    local, cloud, theirs = make_local(pro_user), make_cloud(pro_user), make_local(other)
    # started and finished one after another (a run's many updates leave the tally alone)
    for _ in range(3):
        run = run_start(config=local, trigger=RunTrigger.MANUAL, enqueue=False)
        run_finish(run_id=run.id, status=RunStatus.SUCCESS, items_processed=2)
    run_start(config=cloud, trigger=RunTrigger.MANUAL, enqueue=False)
    AgentRunLog.objects.bulk_create(
        [AgentRunLog(user=other, agent_id=theirs.id, agent_type="local", status="success") for _ in range(2)]
    )
    assert _tallied(pro_user) == _counted(pro_user) == {local.id: 3, cloud.id: 1}
    assert _tallied(other) == _counted(other) == {theirs.id: 2}

    # deleted: one run, then every run of an agent
    AgentRunLog.objects.filter(agent_id=local.id).first().delete()
    AgentRunLog.objects.filter(agent_id=cloud.id).delete()
    assert _tallied(pro_user) == _counted(pro_user) == {local.id: 2}
    assert run_count(user=pro_user) == 2
    assert run_count(user=pro_user, agent_id=cloud.id) == 0
    assert run_count(user=other, agent_id=theirs.id) == 2


def test_the_runs_list_total_is_read_from_the_tallies_not_counted(pro_user, pro_client):
    local = make_local(pro_user)
    AgentRunLog.objects.bulk_create(
        [AgentRunLog(user=pro_user, agent_id=local.id, agent_type="local", status="success") for _ in range(7)]
    )

    with CaptureQueriesContext(connection) as queries:
        listed = pro_client.get("/api/v1/agents/runs", {"agent_id": str(local.id), "limit": 2})
        everything = pro_client.get("/api/v1/agents/runs", {"limit": 2})

    assert (listed["X-Total-Count"], everything["X-Total-Count"]) == ("7", "7")
    counting = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "agents_agentrunlog" in q["sql"]]
    assert counting == []


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_tallies_from_the_runs_already_there(pro_user):
    local = make_local(pro_user)
    with migration_steps() as steps:
        # given runs written before the tallies existed
        old = steps.to(BEFORE)
        OldRun = old.get_model("agents", "AgentRunLog")
        for _ in range(4):
            OldRun.objects.create(user_id=pro_user.pk, agent_id=local.id, agent_type="local", status="success")

        # when it runs
        steps.to(TALLIED)

        # then the agent's runs are tallied, and a new run moves the tally
        assert _tallied(pro_user) == {local.id: 4}
        AgentRunLog.objects.create(user=pro_user, agent_id=local.id, agent_type="local", status="success")
        assert run_count(user=pro_user, agent_id=local.id) == 5
