"""A device that drops during a run's last delivery attempt (its leftovers) makes the run partial,
with the reason, like a drop met while the run delivered its items as they came."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from apps.agents.extraction import ProposedItem
from apps.agents.models import OutboxStatus, RunStatus
from apps.agents.outbox import outbox_items_create

from .conftest import execute, one_task_per_file, outbox, rows, start_run, write_files

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_device_dropped_during_the_leftovers_makes_the_run_partial(
    devices, user, llm, make_local_config, tmp_path, settings
):
    # given a run with one file, and one item of the same run still pending in the outbox (left by
    # an executor that died before delivering it: only the last attempt picks it up)
    settings.AGENTS_EXTRACTION_CONCURRENCY = 1
    settings.AGENTS_DELIVERY_CONCURRENCY = 1
    write_files(tmp_path / "inbox", 1)
    client = await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path / "inbox")])
    llm.fallback = one_task_per_file
    run = await start_run(config)
    leftover = uuid.uuid4()
    item = ProposedItem("tasks", {"title": "Send the invoice", "isAiSuggested": 1, "isApproved": 0})
    await sync_to_async(outbox_items_create)(
        user_id=user.id, run_id=run.id, device_id="laptop", items=[(leftover, item)]
    )

    # and a device that drops instead of answering the leftover's insert
    async def drop_on_the_leftover(call):
        if call["action"] == "insert" and call["data"]["id"] == str(leftover):
            await client.ws.close()
            return None
        return await client.run_tool(call)

    client.tool_handler = drop_on_the_leftover

    # when the run executes
    run = await execute(run)

    # then the file's item reached the device, the leftover waits, and the run is partial with the reason
    assert [t["title"] for t in rows(client)] == ["Follow up note 0"]
    assert [i.id for i in await outbox(run_id=run.id, status=OutboxStatus.PENDING)] == [leftover]
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.PARTIAL, 1, 1)
    assert any(e.startswith("device_dropped: ") for e in run.errors)
