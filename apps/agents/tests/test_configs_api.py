"""Agent configs over REST: CRUD, tier limits, ownership, validation, time zone, runs, manual runs."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.db import connections
from rest_framework.test import APIClient

from apps.accounts.testing import client_for
from apps.agents.configs import cloud_agent_update
from apps.agents.models import AgentRunLog, CloudAgentConfig, LocalAgentConfig, RunStatus
from apps.agents.runs import run_finish

from .conftest import cloud_body, local_body, make_cloud, make_local

pytestmark = pytest.mark.django_db

LOCAL = "/api/v1/agents/local"
CLOUD = "/api/v1/agents/cloud"


def test_catalog_lists_the_four_agent_types(free_client):
    catalog = free_client.get("/api/v1/agents/catalog").json()

    assert [item["type"] for item in catalog] == ["local_directory", "gmail", "teams", "outlook"]
    assert all({"type", "name", "description", "config_schema"} <= set(item) for item in catalog)


def test_local_agent_round_trip(pro_client):
    # given a created local agent
    created = pro_client.post(LOCAL, local_body())
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["device_id"] == "laptop-1"
    assert body["directory_paths"] == ["/home/alice/mail"]
    assert body["next_run_at"] is not None
    assert {"id", "created_at", "updated_at", "last_run_at", "enabled"} <= set(body)

    # when it is listed (a JSON array), updated partially, then deleted with its runs
    assert [item["id"] for item in pro_client.get(LOCAL).json()] == [body["id"]]
    updated = pro_client.put(f"{LOCAL}/{body['id']}", {"prompt_template": "New template"})
    assert updated.status_code == 200
    assert updated.json()["prompt_template"] == "New template"
    assert updated.json()["directory_paths"] == ["/home/alice/mail"]
    AgentRunLog.objects.create(user_id=body["user_id"], agent_id=body["id"], agent_type="local", status="success")
    deleted = pro_client.delete(f"{LOCAL}/{body['id']}")

    # then
    assert deleted.json() == {"ok": True}
    assert pro_client.get(LOCAL).json() == []
    assert not AgentRunLog.objects.filter(agent_id=body["id"]).exists()


def test_cloud_agent_round_trip_ignores_the_legacy_token_field(pro_client):
    created = pro_client.post(CLOUD, cloud_body(oauth_token_encrypted="legacy-blob"))

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["provider"] == "gmail"
    assert body["filter_config"] == {
        "labels": ["clients"],
        "senders": [],
        "date_range": {"from": "2026-01-01", "to": None},
    }
    assert "oauth_token_encrypted" not in body
    assert pro_client.put(f"{CLOUD}/{body['id']}", {"enabled": False}).json()["next_run_at"] is None
    assert pro_client.delete(f"{CLOUD}/{body['id']}").json() == {"ok": True}


def test_free_tier_allows_three_agents_of_which_two_enabled(free_client):
    # given two enabled agents
    assert free_client.post(LOCAL, local_body()).status_code == 201
    assert free_client.post(CLOUD, cloud_body()).status_code == 201

    # when a third enabled one is created, then batch_active refuses it
    third = free_client.post(LOCAL, local_body(name="third"))
    assert third.status_code == 403
    assert third.json()["code"] == "limit_reached"
    assert third.json()["feature"] == "batch_active"

    # a third disabled one is fine; a fourth is over the agents limit
    disabled = free_client.post(LOCAL, local_body(name="third", enabled=False))
    assert disabled.status_code == 201
    fourth = free_client.post(LOCAL, local_body(name="fourth", enabled=False))
    assert fourth.status_code == 403
    assert fourth.json()["feature"] == "agents"

    # enabling the disabled one through PUT is refused too
    enabling = free_client.put(f"{LOCAL}/{disabled.json()['id']}", {"enabled": True})
    assert enabling.status_code == 403
    assert enabling.json()["feature"] == "batch_active"
    assert (
        LocalAgentConfig.objects.filter(enabled=True).count() + CloudAgentConfig.objects.filter(enabled=True).count()
        == 2
    )


def test_pro_tier_allows_ten_enabled_agents(pro_client):
    for index in range(10):
        assert pro_client.post(LOCAL, local_body(name=f"a{index}")).status_code == 201

    eleventh = pro_client.post(LOCAL, local_body(name="a10"))

    assert eleventh.status_code == 403
    assert eleventh.json()["limit"] == 10
    assert pro_client.post(LOCAL, local_body(name="a10", enabled=False)).status_code == 201


def test_a_downgraded_user_keeps_reading_editing_disabling_and_deleting(free_user, free_client):
    # given a free user with four enabled configs (made on a higher plan)
    configs = [make_local(free_user, name=f"n{index}", enabled=True) for index in range(4)]

    # then reads, edits of enabled ones, disables and deletes still work
    assert len(free_client.get(LOCAL).json()) == 4
    assert free_client.put(f"{LOCAL}/{configs[0].id}", {"name": "renamed"}).status_code == 200
    assert free_client.put(f"{LOCAL}/{configs[1].id}", {"enabled": False}).status_code == 200
    assert free_client.delete(f"{LOCAL}/{configs[2].id}").json() == {"ok": True}
    # but nothing new is switched on
    assert free_client.put(f"{LOCAL}/{configs[1].id}", {"enabled": True}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_racing_creates_cannot_both_pass_the_limit(free_user) -> None:
    # given a free user with one enabled agent and two clients racing to add the second and third
    make_local(free_user)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def create(name: str) -> None:
        try:
            client = client_for(free_user)
            barrier.wait()
            statuses.append(client.post(LOCAL, local_body(name=name)).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(name,)) for name in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then exactly one wins
    assert sorted(statuses) == [201, 403]
    assert LocalAgentConfig.objects.filter(user=free_user, enabled=True).count() == 2


def test_another_users_agent_is_not_found_everywhere(pro_user, other_client):
    local = make_local(pro_user)
    cloud = make_cloud(pro_user)

    assert other_client.put(f"{LOCAL}/{local.id}", {"name": "x"}).status_code == 404
    assert other_client.delete(f"{LOCAL}/{local.id}").status_code == 404
    assert other_client.put(f"{CLOUD}/{cloud.id}", {"name": "x"}).status_code == 404
    assert other_client.delete(f"{CLOUD}/{cloud.id}").status_code == 404
    assert other_client.post(f"/api/v1/agents/{local.id}/run").status_code == 404
    assert other_client.get("/api/v1/agents/runs", {"agent_id": str(local.id)}).status_code == 404
    assert other_client.get(LOCAL).json() == []
    assert LocalAgentConfig.objects.get(id=local.id).name == "folder"


@pytest.mark.parametrize("kind", ["local", "cloud"])
def test_another_users_agent_is_not_found_by_either_branch_of_the_lookup(pro_user, other_client, kind):
    # given someone else's agent of each kind (the lookup tries local, then cloud: both must be owned)
    config = make_local(pro_user) if kind == "local" else make_cloud(pro_user)

    # when
    run_now = other_client.post(f"/api/v1/agents/{config.id}/run")
    runs = other_client.get("/api/v1/agents/runs", {"agent_id": str(config.id)})

    # then
    assert (run_now.status_code, runs.status_code) == (404, 404)
    assert run_now.json()["code"] == "not_found"
    assert not AgentRunLog.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (local_body(schedule_cron="every day"), "schedule_cron"),
        (local_body(schedule_cron="0 0 30 2 *"), "schedule_cron"),
        (local_body(data_types=[]), "data_types"),
        (local_body(data_types=["emails"]), "data_types.0"),
        (local_body(directory_paths="not-a-list"), "directory_paths"),
        (local_body(directory_paths=["x" * 2000]), "directory_paths.0"),
        (local_body(file_extensions=["../../etc"]), "file_extensions.0"),
        (local_body(name=""), "name"),
    ],
)
def test_invalid_local_input_is_a_400_naming_the_field(pro_client, body, field):
    response = pro_client.post(LOCAL, body)

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not LocalAgentConfig.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (cloud_body(provider="dropbox"), "provider"),
        (cloud_body(filter_config={"labels": "inbox"}), "filter_config.labels"),
        (cloud_body(filter_config={"unknown": 1}), "filter_config.unknown"),
        (
            cloud_body(filter_config={"date_range": {"from": "2026-02-01", "to": "2026-01-01"}}),
            "filter_config.date_range",
        ),
        (cloud_body(schedule_cron="* * * *"), "schedule_cron"),
    ],
)
def test_invalid_cloud_input_is_a_400_naming_the_field(pro_client, body, field):
    response = pro_client.post(CLOUD, body)

    assert response.status_code == 400
    assert field in response.json()["fields"], response.json()
    assert not CloudAgentConfig.objects.exists()


def test_cron_error_says_why(pro_client):
    response = pro_client.post(LOCAL, local_body(schedule_cron="* * *"))

    assert response.json()["code"] == "invalid_schedule"
    assert "5 fields" in response.json()["fields"]["schedule_cron"][0]


def test_time_zone_is_readable_settable_and_moves_next_run(pro_user, pro_client, django_capture_on_commit_callbacks):
    # given a 09:00 agent of a user in UTC
    created = pro_client.post(LOCAL, local_body(schedule_cron="0 9 * * *")).json()
    assert pro_client.get("/api/v1/auth/me").json()["time_zone"] == "UTC"
    assert created["next_run_at"].endswith("09:00:00Z")

    # when the user moves to Tokyo (UTC+9)
    with django_capture_on_commit_callbacks(execute=True):
        response = pro_client.patch("/api/v1/auth/me", {"time_zone": "Asia/Tokyo"})

    # then 09:00 Tokyo is 00:00 UTC
    assert response.status_code == 200
    assert response.json()["time_zone"] == "Asia/Tokyo"
    assert {"id", "email", "tier", "email_verified"} <= set(response.json())
    assert pro_client.get(LOCAL).json()[0]["next_run_at"].endswith("00:00:00Z")


def test_invalid_time_zone_is_a_400_naming_the_field(pro_client):
    response = pro_client.patch("/api/v1/auth/me", {"time_zone": "Mars/Olympus_Mons"})

    assert response.status_code == 400
    assert "time_zone" in response.json()["fields"]
    assert pro_client.get("/api/v1/auth/me").json()["time_zone"] == "UTC"


def test_runs_list_paginates_newest_first_and_filters_by_agent(pro_user, pro_client):
    # given five runs of one agent and one of another
    first, second = make_local(pro_user), make_cloud(pro_user)
    base = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    for index in range(5):
        run = AgentRunLog.objects.create(user=pro_user, agent_id=first.id, agent_type="local", status="success")
        AgentRunLog.objects.filter(id=run.id).update(started_at=base + dt.timedelta(hours=index))
    AgentRunLog.objects.create(user=pro_user, agent_id=second.id, agent_type="cloud", status="error", errors=["boom"])

    # when
    page = pro_client.get("/api/v1/agents/runs", {"agent_id": str(first.id), "page": 2, "limit": 2})
    everything = pro_client.get("/api/v1/agents/runs")

    # then
    assert page.status_code == 200
    assert isinstance(page.json(), list)
    assert page["X-Total-Count"] == "5"
    assert [r["started_at"][:13] for r in page.json()] == ["2026-05-01T02", "2026-05-01T01"]
    assert set(page.json()[0]) >= {
        "id",
        "agent_id",
        "agent_type",
        "status",
        "items_processed",
        "items_created",
        "errors",
        "started_at",
        "completed_at",
    }
    assert len(everything.json()) == 6
    assert pro_client.get("/api/v1/agents/runs", {"limit": 500}).status_code == 400
    assert pro_client.get("/api/v1/agents/runs", {"agent_id": "nope"}).status_code == 400


def test_manual_run_starts_one_run_and_a_second_is_409_until_it_finishes(pro_user, pro_client):
    # given a disabled agent (manual runs still allowed)
    config = make_local(pro_user, enabled=False)

    # when it is run twice
    first = pro_client.post(f"/api/v1/agents/{config.id}/run")
    second = pro_client.post(f"/api/v1/agents/{config.id}/run")

    # then one run is running and the second trigger is refused
    assert first.status_code == 200
    assert first.json()["ok"] is True
    run = AgentRunLog.objects.get(id=first.json()["run_id"])
    assert (run.status, run.trigger, run.device_id) == (RunStatus.RUNNING, "manual", "laptop-1")
    assert second.status_code == 409
    assert second.json()["code"] == "agent_already_running"

    # once it finished, another manual run starts
    run_finish(run_id=run.id, status=RunStatus.SUCCESS, items_processed=3, items_created=2)
    assert pro_client.post(f"/api/v1/agents/{config.id}/run").status_code == 200
    assert AgentRunLog.objects.filter(agent_id=config.id).count() == 2


def test_unknown_agent_ids_are_404(pro_client):
    missing = uuid.uuid4()

    assert pro_client.post(f"/api/v1/agents/{missing}/run").status_code == 404
    assert pro_client.put(f"{LOCAL}/{missing}", {"name": "x"}).status_code == 404


def test_endpoints_need_authentication():
    assert APIClient().get(LOCAL).status_code == 401


def test_free_tier_reads_from_one_cloud_provider(free_client):
    assert free_client.post(CLOUD, cloud_body(provider="gmail")).status_code == 201

    second_gmail = free_client.post(CLOUD, cloud_body(provider="gmail", name="more gmail", enabled=False))
    outlook = free_client.post(CLOUD, cloud_body(provider="outlook", enabled=False, filter_config={}))

    assert second_gmail.status_code == 201
    assert outlook.status_code == 403
    assert outlook.json()["feature"] == "providers"


def test_the_provider_of_a_cloud_agent_cannot_change(pro_client):
    created = pro_client.post(CLOUD, cloud_body()).json()

    updated = pro_client.put(f"{CLOUD}/{created['id']}", {"provider": "teams", "name": "renamed"})

    assert updated.status_code == 200
    assert (updated.json()["provider"], updated.json()["name"]) == ("gmail", "renamed")


def test_the_update_service_keeps_the_provider_whichever_door_calls_it(pro_user):
    # given a Gmail agent
    config = make_cloud(pro_user)

    # when a caller other than the REST view sends the whole config back with another provider
    updated = cloud_agent_update(user=pro_user, agent_id=config.id, provider="teams", name="renamed")

    # then the provider is still the one it was created with; the other fields changed
    config.refresh_from_db()
    assert (updated.provider, config.provider, config.name) == ("gmail", "gmail", "renamed")
