"""A cloud run end to end: Gmail (the connectors' loopback fake, stubbed at the HTTP boundary) →
``connector_fetch`` → the scripted extraction model → outbox → any online device of the user.
The run is executed by the real Celery task body (``agent_run_execute``, called directly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from apps.agents.models import AgentRunLog, CloudAgentConfig, OutboxStatus, RunStatus
from apps.agents.tasks import agent_run_execute
from apps.assistant.testing.scripted_openai import failure
from apps.connectors.models import GrantStatus, OAuthGrant
from apps.connectors.tests.conftest import connect, fake, provider_settings  # noqa: F401
from apps.connectors.tests.fake_providers import gmail_message, graph_time
from apps.devices.tests.conftest import capable_of

from .conftest import document_of, in_worker_thread, outbox, propose, rows, start_run, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC).replace(microsecond=0)


def task_per_subject(body):
    subject = next(line for line in document_of(body).splitlines() if line.startswith("Subject: "))
    return propose(tasks=[{"title": subject.removeprefix("Subject: ")}])


@pytest.fixture
def mailbox(fake):  # noqa: F811
    for n, subject in enumerate(["Send the March invoice", "Book the kickoff"]):
        fake.add_gmail(
            gmail_message(
                message_id=f"m{n}",
                sender="Carla Client <carla@client.example>",
                subject=subject,
                plain=f"Hi, please: {subject.lower()}.",
                received=NOW - timedelta(hours=5 - n),
            )
        )
    return fake


@pytest.fixture
def gmail_config(user, connect, mailbox):  # noqa: F811
    connect(user, "gmail")
    return CloudAgentConfig.objects.create(
        user=user, name="Client mail", provider="gmail", data_types=["tasks"], prompt_template="Requests are tasks."
    )


async def execute_task(run) -> AgentRunLog:
    await sync_to_async(in_worker_thread, thread_sensitive=False)(agent_run_execute, run_id=str(run.id))
    return await sync_to_async(AgentRunLog.objects.get)(id=run.id)


async def test_mail_becomes_suggested_tasks_on_an_online_device(devices, user, llm, gmail_config):
    # given an online device and two new mails
    client = await devices(user)
    llm.fallback = task_per_subject

    # when the run executes
    run = await execute_task(await start_run(gmail_config))

    # then each mail became a suggested task on the device, and the cursor moved on
    assert sorted(t["title"] for t in rows(client)) == ["Book the kickoff", "Send the March invoice"]
    assert {(t["isAiSuggested"], t["isApproved"]) for t in rows(client)} == {(1, 0)}
    assert (run.status, run.items_processed, run.items_created, run.errors) == (RunStatus.SUCCESS, 2, 2, [])
    config = await sync_to_async(CloudAgentConfig.objects.get)(id=gmail_config.id)
    assert config.sync_cursor
    # and the mail reached the model as fenced data: sender, subject, body
    documents = [document_of(r.body) for r in llm.chat_requests()]
    assert any(
        "From: Carla Client <carla@client.example>" in d and "please: send the march invoice" in d for d in documents
    )


async def test_a_capable_socket_follows_the_cloud_run_to_its_final_state(devices, user, llm, gmail_config):
    # given an online device that negotiated agent_progress, and two new mails
    client = await devices(user, capabilities=["agent_progress"])
    await capable_of(user)
    llm.fallback = task_per_subject

    # when the run executes
    run = await execute_task(await start_run(gmail_config))
    await wait_until(lambda: client.progress and client.progress[-1]["phase"] == "done")

    # then the mails count as read, and the final frame has the run's totals
    assert client.progress[-1] == {
        "type": "agent_progress",
        "run_id": str(run.id),
        "agent_id": str(gmail_config.id),
        "phase": "done",
        "files_read": 2,
        "items_extracted": 2,
        "items_delivered": 2,
    }


async def test_with_no_device_online_the_items_wait_then_arrive_on_hello(devices, user, llm, gmail_config):
    # given no device online
    llm.fallback = task_per_subject

    # when the run executes
    run = await execute_task(await start_run(gmail_config))

    # then it succeeded, nothing was inserted yet, both items wait for any device
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.SUCCESS, 2, 0)
    waiting = await outbox(run_id=run.id)
    assert [(i.status, i.device_id) for i in waiting] == [(OutboxStatus.PENDING, "")] * 2

    # when a device of the user says hello
    client = await devices(user, device_id="desktop")

    async def delivered() -> bool:
        return all(i.status == OutboxStatus.DELIVERED for i in await outbox(run_id=run.id))

    await wait_until(delivered)

    # then the items are on that device, bound to it, and counted on the run
    assert len(rows(client)) == 2
    assert {i.device_id for i in await outbox(run_id=run.id)} == {"desktop"}
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 2


async def test_a_grant_that_needs_reconnecting_makes_the_run_an_error_naming_it(user, llm, gmail_config):
    # given a grant the provider refused
    await sync_to_async(OAuthGrant.objects.filter(user=user).update)(status=GrantStatus.NEEDS_RECONNECT)

    # when
    run = await execute_task(await start_run(gmail_config))

    # then
    assert run.status == RunStatus.ERROR
    assert run.errors[0].startswith("grant_needs_reconnect: ")
    assert llm.chat_requests() == []


async def test_without_a_grant_the_run_is_an_error_grant_missing(user, llm, mailbox):
    config = await sync_to_async(CloudAgentConfig.objects.create)(
        user=user, name="Outlook", provider="outlook", data_types=["tasks"]
    )

    run = await execute_task(await start_run(config))

    assert run.status == RunStatus.ERROR
    assert run.errors[0].startswith("grant_missing: ")


async def test_the_cursor_stays_when_a_message_could_not_be_extracted_and_a_rerun_adds_no_duplicates(
    devices, user, llm, gmail_config, settings
):
    # given a device, and a model that fails on the first of the two mails
    settings.AGENTS_EXTRACTION_CONCURRENCY = 1
    client = await devices(user)
    llm.script(failure(500))
    llm.fallback = task_per_subject

    # when the run executes
    first = await execute_task(await start_run(gmail_config))

    # then one task arrived, the run is partial, and the cursor did not move
    assert (first.status, first.items_created) == (RunStatus.PARTIAL, 1)
    assert (await sync_to_async(CloudAgentConfig.objects.get)(id=gmail_config.id)).sync_cursor == {}

    # when the next run reads both mails again
    second = await execute_task(await start_run(gmail_config))

    # then only the missing task is added (the other one has the same id: not proposed twice)
    assert (second.status, second.items_created) == (RunStatus.SUCCESS, 1)
    assert sorted(t["title"] for t in rows(client)) == ["Book the kickoff", "Send the March invoice"]
    assert (await sync_to_async(CloudAgentConfig.objects.get)(id=gmail_config.id)).sync_cursor


@pytest.fixture
def outlook_config(user, connect, fake):  # noqa: F811
    connect(user, "outlook")
    for n, subject in enumerate(["Review the storyboard", "Call the printer"]):
        fake.state.outlook_folders["inbox"].append(
            {
                "id": f"AAMkRun{n}",
                "subject": subject,
                "from": {"emailAddress": {"name": "Carla", "address": "carla@client.example"}},
                "receivedDateTime": graph_time(NOW - timedelta(hours=3 - n)),
                "body": {"contentType": "text", "content": f"Could you {subject.lower()}?"},
                "webLink": f"https://outlook.office365.com/owa/?ItemID=AAMkRun{n}",
                "isDraft": False,
            }
        )
    return CloudAgentConfig.objects.create(
        user=user, name="Outlook", provider="outlook", data_types=["tasks"], prompt_template="Requests are tasks."
    )


async def test_outlook_mail_becomes_suggested_tasks_through_graph(devices, user, llm, outlook_config):
    # given an online device and two new mails in the Outlook inbox (Graph, stubbed at the HTTP boundary)
    client = await devices(user)
    llm.fallback = task_per_subject

    # when the run executes
    run = await execute_task(await start_run(outlook_config))

    # then each mail became a suggested task on the device and the delta cursor was kept
    assert sorted(t["title"] for t in rows(client)) == ["Call the printer", "Review the storyboard"]
    assert {(t["isAiSuggested"], t["isApproved"]) for t in rows(client)} == {(1, 0)}
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.SUCCESS, 2, 2)
    config = await sync_to_async(CloudAgentConfig.objects.get)(id=outlook_config.id)
    assert config.sync_cursor


def task_per_chat_line(body):
    """One task per Teams message: its text (the HTML body, tags stripped by the connector)."""
    text = document_of(body).split("\n\n", 1)[-1].strip()
    return propose(tasks=[{"title": text}])


@pytest.fixture
def teams_config(user, connect, fake):  # noqa: F811
    connect(user, "teams")
    fake.state.chats = [{"id": "19:apollo@thread.v2", "topic": "Project Apollo", "chatType": "group"}]
    fake.state.chat_messages = {
        "19:apollo@thread.v2": [
            {
                "id": str(n),
                "messageType": "message",
                "createdDateTime": graph_time(NOW - timedelta(minutes=30 - n)),
                "lastModifiedDateTime": graph_time(NOW - timedelta(minutes=30 - n)),
                "deletedDateTime": None,
                "from": {"user": {"id": "u1", "displayName": "Carla Client"}},
                "body": {"contentType": "html", "content": f"<p>{text}</p>"},
                "webUrl": f"https://teams.microsoft.com/l/message/{n}",
            }
            for n, text in enumerate(["Send the revised quote", "Share the launch checklist"])
        ]
    }
    return CloudAgentConfig.objects.create(
        user=user, name="Teams", provider="teams", data_types=["tasks"], prompt_template="Requests are tasks."
    )


async def test_teams_chat_messages_become_suggested_tasks_and_a_rerun_adds_nothing(devices, user, llm, teams_config):
    # given an online device and two chat messages in Teams (Graph, stubbed at the HTTP boundary)
    client = await devices(user)
    llm.fallback = task_per_chat_line

    # when the run executes, and again with nothing new in the chat
    run = await execute_task(await start_run(teams_config))
    rerun = await execute_task(await start_run(teams_config))

    # then each message became one suggested task, the chat cursor was kept, and the rerun read nothing
    assert sorted(t["title"] for t in rows(client)) == ["Send the revised quote", "Share the launch checklist"]
    assert {(t["isAiSuggested"], t["isApproved"]) for t in rows(client)} == {(1, 0)}
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.SUCCESS, 2, 2)
    assert (rerun.status, rerun.items_processed, rerun.items_created) == (RunStatus.SUCCESS, 0, 0)
    config = await sync_to_async(CloudAgentConfig.objects.get)(id=teams_config.id)
    assert "19:apollo@thread.v2" in config.sync_cursor["chats"]


async def test_a_run_meters_each_extraction_exactly_and_with_no_budget_left_does_not_start(
    devices, user, llm, gmail_config
):
    from apps.assistant.testing.scripted_openai import Usage
    from apps.billing.budgets import llm_budget_override_set
    from apps.billing.models import LlmUsage

    # given two mails, each extraction reporting its own usage
    await devices(user)

    def extraction_with_usage(body):
        reply = task_per_subject(body)
        subject_is_invoice = "Send the March invoice" in document_of(body)
        reply.usage = Usage(prompt=4000 if subject_is_invoice else 3000, completion=70, cached=1000)
        return reply

    llm.fallback = extraction_with_usage

    # when the run executes
    run = await execute_task(await start_run(gmail_config))

    # then both extractions are counted once, as agent_extraction, under the run's id
    rows_ = await sync_to_async(list)(LlmUsage.objects.filter(user=user))
    assert run.status == RunStatus.SUCCESS
    assert sorted((r.purpose, r.prompt_tokens, r.completion_tokens, r.cached_tokens) for r in rows_) == [
        ("agent_extraction", 3000, 70, 1000),
        ("agent_extraction", 4000, 70, 1000),
    ]
    assert {r.run_id for r in rows_} == {str(run.id)}

    # when the budget is used up and the next run is due
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=7000, actor=None)
    calls_before = len(llm.chat_requests())
    refused = await execute_task(await start_run(gmail_config))

    # then it did not start: no model call, and the run log says why
    assert len(llm.chat_requests()) == calls_before
    assert refused.status == RunStatus.ERROR
    assert len(refused.errors) == 1
    assert refused.errors[0].startswith("budget_exhausted: ")
