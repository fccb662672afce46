"""A local run whose executor died after asking the device (a killed Celery worker child; the task,
acknowledged late, comes back): the next executor does not ask the device again, reads the answer
the device sent meanwhile, and the run ends once, with its true status."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from apps.agents.local_runs import local_run_execute
from apps.agents.models import AgentRunLog, OutboxStatus, RunStatus

from .conftest import execute, one_task_per_fenced_file, outbox, rows, start_run, wait_until, write_files

pytestmark = pytest.mark.django_db(transaction=True)


# A request per file, and several files to a request (the shipped 8, on one slot so that the three
# files share a request rather than being spread over slots).
@pytest.mark.parametrize("files_per_request", [1, 8])
async def test_a_redelivered_run_does_not_ask_the_device_twice_and_finishes_from_its_answer(
    devices, user, llm, make_local_config, tmp_path, settings, files_per_request
):
    # given a device that answers a run only when the test says so, and ignores a run it already has
    settings.AGENTS_EXTRACTION_FILES_PER_REQUEST = files_per_request
    settings.AGENTS_EXTRACTION_CONCURRENCY = 1
    write_files(tmp_path, 3)
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path)])
    llm.fallback = one_task_per_fenced_file
    answer = asyncio.Event()
    seen: set[str] = set()

    async def device_agent(frame: dict) -> None:
        if frame["run_id"] in seen:
            return
        seen.add(frame["run_id"])
        await answer.wait()
        await client.run_agent(frame)

    client.agent_handler = device_agent
    run = await start_run(config)

    # and a first executor that asked the device, then vanished without finishing anything
    first = asyncio.ensure_future(local_run_execute(run, config))
    await wait_until(lambda: len(client.agent_runs) == 1)
    first.cancel()
    await asyncio.wait({first}, timeout=10)
    assert first.done()

    # when the device answers, and the task comes back to a new executor
    answer.set()
    run = await execute(run)

    # then the device was asked once, its files became tasks once, and the run log says success
    assert len(client.agent_runs) == 1
    assert len(llm.chat_requests()) == (3 if files_per_request == 1 else 1)  # the three files shared one
    assert sorted(t["title"] for t in rows(client)) == ["Follow up note 0", "Follow up note 1", "Follow up note 2"]
    assert (run.status, run.items_processed, run.items_created, run.errors) == (RunStatus.SUCCESS, 3, 3, [])
    assert {i.status for i in await outbox(run_id=run.id)} == {OutboxStatus.DELIVERED}
    assert await sync_to_async(AgentRunLog.objects.filter(agent_id=config.id).count)() == 1
