"""The durable outbox over the real socket: a device that drops mid-run loses nothing, gets the rest
when it says hello again, and a redelivery never inserts a row twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.agents import run_pipeline, selectors
from apps.agents.extraction import ProposedItem
from apps.agents.models import AgentRunLog, OutboxItem, OutboxStatus, RunStatus
from apps.agents.outbox import (
    OutboxDelivery,
    outbox_claim,
    outbox_deliver,
    outbox_flush_for_device,
    outbox_item_delivered,
    outbox_items_create,
)
from apps.devices.client import LocalStore
from apps.devices.node import loop_node
from apps.devices.tests.conftest import hello_work_done

from .conftest import execute, one_task_per_file, outbox, rows, start_run, wait_until, write_files

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_at_a_time(settings):
    settings.AGENTS_EXTRACTION_CONCURRENCY = 1
    settings.AGENTS_DELIVERY_CONCURRENCY = 1


async def test_a_disconnect_mid_delivery_loses_nothing_and_duplicates_nothing(
    devices, user, llm, make_local_config, tmp_path, one_at_a_time
):
    # given five files, and a device that writes the third insert but drops before answering it
    write_files(tmp_path / "inbox", 5)
    store = LocalStore(str(tmp_path / "device.sqlite3"))
    client = await devices(user, device_id="laptop", store=store)
    inserts = 0

    async def drop_on_third_insert(call):
        nonlocal inserts
        if call["action"] == "insert":
            inserts += 1
            if inserts == 3:
                store.execute(call)  # the row is written on the device...
                await client.ws.close()  # ...and the answer is lost with the socket
                return None
        return await client.run_tool(call)

    client.tool_handler = drop_on_third_insert
    config = await make_local_config("laptop", [str(tmp_path / "inbox")])
    llm.fallback = one_task_per_file

    # when the run executes
    run = await execute(await start_run(config))

    # then the run is partial with the reason, two inserts acknowledged, three items wait in the outbox
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.PARTIAL, 5, 2)
    assert any(e.startswith("device_dropped: ") for e in run.errors)
    assert len(await outbox(run_id=run.id, status=OutboxStatus.PENDING)) == 3
    assert len(rows(client)) == 3

    # when the device says hello again (same SQLite file)
    again = await devices(user, device_id="laptop", store=store)

    async def all_delivered() -> bool:
        return not await outbox(run_id=run.id, status=OutboxStatus.PENDING)

    await wait_until(all_delivered)

    # then every item is on the device exactly once, under the outbox's ids
    tasks = rows(again)
    items = await outbox(run_id=run.id)
    assert sorted(t["id"] for t in tasks) == sorted(str(i.id) for i in items)
    assert len(tasks) == 5
    assert sorted(t["title"] for t in tasks) == [f"Follow up note {i}" for i in range(5)]
    # and the late deliveries are counted on the run
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 5


async def test_a_device_that_drops_while_sending_ends_the_run_with_the_reason(
    devices, user, llm, make_local_config, tmp_path, one_at_a_time
):
    # given a device that sends one piece of files and then disappears without agent_complete
    write_files(tmp_path, 2)
    client = await devices(user, device_id="laptop")

    async def send_one_piece_then_drop(frame):
        files = [{"path": str(tmp_path / "a.md"), "name": "a.md", "content": "Follow up A\nCall Anna", "metadata": {}}]
        await client.send({"type": "agent_data", "run_id": frame["run_id"], "files": files})
        await wait_until(lambda: llm.chat_requests())  # the piece reached the run
        await client.ws.close()

    client.agent_handler = send_one_piece_then_drop
    config = await make_local_config("laptop", [str(tmp_path)])
    llm.fallback = one_task_per_file

    # when
    run = await execute(await start_run(config))

    # then the run is not left running: partial, with the drop named
    assert run.status == RunStatus.PARTIAL
    assert run.items_processed == 1
    assert any(e.startswith("device_dropped: ") for e in run.errors)
    # and the extracted item is in the outbox: inserted before the drop, or waiting for the next hello
    (item,) = await outbox(run_id=run.id)
    assert (item.status, run.items_created) in {(OutboxStatus.DELIVERED, 1), (OutboxStatus.PENDING, 0)}


async def test_a_device_that_goes_quiet_ends_the_run_as_an_error(
    devices, user, llm, make_local_config, tmp_path, settings
):
    # given a device that never answers agent_run
    settings.AGENTS_DATA_IDLE_TIMEOUT = 0.5
    client = await devices(user, device_id="laptop")

    async def ignore(frame):
        return None

    client.agent_handler = ignore
    config = await make_local_config("laptop", [str(tmp_path)])

    # when
    run = await execute(await start_run(config))

    # then
    assert run.status == RunStatus.ERROR
    assert [e.split(":")[0] for e in run.errors] == ["device_idle"]


async def test_redelivering_an_acknowledged_item_inserts_nothing_and_counts_once(
    devices, user, make_local_config, tmp_path
):
    # given one outbox item, delivered once
    client = await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    item = ProposedItem("tasks", {"title": "Send the invoice", "isAiSuggested": 1, "isApproved": 0})
    item_id = uuid.uuid4()
    await sync_to_async(outbox_items_create)(
        user_id=user.id, run_id=run.id, device_id="laptop", items=[(item_id, item)]
    )
    (pending,) = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop")
    first = await outbox_deliver(user_id=user.id, device_id="laptop", items=[pending])

    # when the same item is delivered again (its first answer was lost, say)
    second = await outbox_deliver(user_id=user.id, device_id="laptop", items=[pending])

    # then the device holds one row with the outbox's id, and the run counted one insert
    assert [(t["id"], t["title"]) for t in rows(client)] == [(str(item_id), "Send the invoice")]
    assert (first.delivered, second.delivered) == (1, 0)
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 1
    assert len(client.tool_calls) == 2


def _sqlite_insert(store: LocalStore, call: dict) -> dict:
    """An insert as the desktop app runs it: no look-up first, so a known id is SQLite's unique error."""
    data = {**call["data"], "createdAt": 1, "updatedAt": 1}
    columns = ", ".join(f'"{c}"' for c in data)
    marks = ", ".join("?" for _ in data)
    store.db.execute(f'INSERT INTO "{call["table"]}" ({columns}) VALUES ({marks})', list(data.values()))
    return store.execute({"action": "get", "table": call["table"], "data": {"id": call["data"]["id"]}})


async def test_a_unique_error_on_a_redelivered_insert_is_a_delivery_when_the_row_is_there(
    devices, user, make_local_config, tmp_path
):
    # given a device that inserts like SQLite (a repeated id fails), and an item it already holds
    client = await devices(user, device_id="laptop")

    async def insert_like_sqlite(call):
        if call["action"] == "insert":
            return _sqlite_insert(client.store, call)
        return await client.run_tool(call)

    client.tool_handler = insert_like_sqlite
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    item_id = uuid.uuid4()
    item = ProposedItem("tasks", {"title": "Send the invoice", "isAiSuggested": 1, "isApproved": 0})
    await sync_to_async(outbox_items_create)(
        user_id=user.id, run_id=run.id, device_id="laptop", items=[(item_id, item)]
    )
    client.store.execute(
        {"action": "insert", "table": "tasks", "data": {"id": str(item_id), "title": "Send the invoice"}}
    )
    (pending,) = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop")

    # when it is delivered (its first answer was lost, say)
    report = await outbox_deliver(user_id=user.id, device_id="laptop", items=[pending])

    # then the insert failed on the unique id, the server looked the id up, and counts it delivered
    assert [c["action"] for c in client.tool_calls] == ["insert", "get"]
    assert (report.delivered, report.failed) == (1, [])
    (stored,) = await outbox(run_id=run.id)
    assert stored.status == OutboxStatus.DELIVERED
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 1
    assert len(rows(client)) == 1


async def test_a_refused_insert_whose_row_is_absent_stays_refused(devices, user, make_local_config, tmp_path):
    # given a device that refuses the insert and holds no such row
    client = await devices(user, device_id="laptop")

    async def refuse_inserts(call):
        if call["action"] == "insert":
            return {"error": "disk full"}
        return await client.run_tool(call)

    client.tool_handler = refuse_inserts
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    item = ProposedItem("tasks", {"title": "Send the invoice"})
    await sync_to_async(outbox_items_create)(
        user_id=user.id, run_id=run.id, device_id="laptop", items=[(uuid.uuid4(), item)]
    )
    (pending,) = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop")

    # when
    report = await outbox_deliver(user_id=user.id, device_id="laptop", items=[pending])

    # then
    assert report.delivered == 0
    assert len(report.failed) == 1
    assert "disk full" in report.failed[0]
    (stored,) = await outbox(run_id=run.id)
    assert stored.status == OutboxStatus.FAILED


async def test_storing_the_same_item_twice_keeps_one_outbox_row(user, make_local_config, tmp_path):
    # given
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    item_id = uuid.uuid4()
    item = ProposedItem("notes", {"title": "Minutes"})

    # when
    first = await sync_to_async(outbox_items_create)(
        user_id=user.id, run_id=run.id, device_id="laptop", items=[(item_id, item)]
    )
    second = await sync_to_async(outbox_items_create)(
        user_id=user.id, run_id=run.id, device_id="laptop", items=[(item_id, item)]
    )

    # then
    assert (first, second) == ([item_id], [])
    assert len(await outbox(user=user)) == 1
    # and the payload is not stored in plaintext
    (row,) = await outbox(user=user)
    assert b"Minutes" not in bytes(row.payload_ciphertext)


async def _two_waiting(user, make_local_config, tmp_path) -> tuple[AgentRunLog, list[uuid.UUID]]:
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    ids = [uuid.uuid4(), uuid.uuid4()]
    await sync_to_async(outbox_items_create)(
        user_id=user.id,
        run_id=run.id,
        device_id="laptop",
        items=[(item_id, ProposedItem("tasks", {"title": f"Task {n}"})) for n, item_id in enumerate(ids)],
    )
    return run, ids


async def test_an_item_added_as_the_last_delivery_worker_ends_is_still_delivered(
    devices, user, make_local_config, tmp_path, one_at_a_time
):
    # given two items waiting for a device, the first on its way in a delivery of one worker
    client = await devices(user, device_id="laptop")
    run, _ = await _two_waiting(user, make_local_config, tmp_path)
    first, second = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id)
    delivery = OutboxDelivery(user_id=user.id, device_id="laptop")
    delivery.add([first])
    (worker,) = delivery._workers

    # when the second is added just as the worker ends, before the delivery's own done-callback has
    # let go of it (a run's next extracted item stored in the same turn of the loop does this)
    worker.remove_done_callback(delivery._workers.discard)
    worker.add_done_callback(lambda _: delivery.add([second]))
    worker.add_done_callback(delivery._workers.discard)
    report = await delivery.close()

    # then it is delivered too, not left behind unreported
    assert (report.delivered, report.undelivered, report.device_error) == (2, 0, "")
    assert len(rows(client)) == 2


async def test_two_deliveries_to_one_device_at_once_insert_each_item_once(devices, user, make_local_config, tmp_path):
    # given two items waiting for a device, and the device's hello flush holding them for delivery
    client = await devices(user, device_id="laptop")
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    flushing = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop")

    # when the run delivers the same items meanwhile (its own delivery, or its leftovers)
    delivering = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id)
    reports = await asyncio.gather(
        outbox_deliver(user_id=user.id, device_id="laptop", items=flushing),
        outbox_deliver(user_id=user.id, device_id="laptop", items=delivering),
    )

    # then the device was asked to insert each item once, and the run counted each once
    inserted = [call["data"]["id"] for call in client.tool_calls if call["action"] == "insert"]
    assert sorted(inserted) == sorted(str(i) for i in ids)
    assert sum(report.delivered for report in reports) == 2
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 2
    assert len(rows(client)) == 2


async def test_an_item_whose_delivery_failed_is_claimed_again_at_once(devices, user, make_local_config, tmp_path):
    # given two items held for a delivery to a device that is offline
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    held = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop")
    report = await outbox_deliver(user_id=user.id, device_id="laptop", items=held)
    assert (report.delivered, report.undelivered) == (0, 2)

    # when the device is back and the run delivers again
    client = await devices(user, device_id="laptop")
    again = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id)
    report = await outbox_deliver(user_id=user.id, device_id="laptop", items=again)

    # then both are delivered now, not after the failed delivery's hold ran out
    assert report.delivered == 2
    assert sorted(t["id"] for t in rows(client)) == sorted(str(i) for i in ids)


async def test_items_held_by_a_delivery_that_died_are_claimed_once_its_hold_runs_out(user, make_local_config, tmp_path):
    # given two items held by a delivery whose process died (nothing released them)
    _run, ids = await _two_waiting(user, make_local_config, tmp_path)
    assert len(await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop")) == 2
    assert await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop") == []

    # when the hold has run out
    await sync_to_async(OutboxItem.objects.filter(id__in=ids).update)(
        delivering_until=timezone.now() - dt.timedelta(seconds=1)
    )

    # then the next delivery claims them
    assert sorted(i.id for i in await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop")) == sorted(ids)


async def test_an_insert_acknowledged_while_the_run_finishes_is_counted(user, make_local_config, tmp_path, monkeypatch):
    # given a run with two items, one acknowledged; the other's acknowledgement (the device's hello
    # flush, say) lands just after the run read its count to finish
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    await sync_to_async(outbox_item_delivered)(item_id=ids[0], run_id=run.id)
    read = run_pipeline._items_created

    def read_then_acknowledged(*, run_id) -> int:
        count = read(run_id=run_id)
        outbox_item_delivered(item_id=ids[1], run_id=run_id)
        return count

    monkeypatch.setattr(run_pipeline, "_items_created", read_then_acknowledged)

    # when the run finishes
    finished = await run_pipeline.finish(run, processed=2, errors=run_pipeline.RunErrors())

    # then both acknowledgements are counted
    assert finished.items_created == 2
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 2


async def test_a_hello_flush_leaves_a_running_runs_items_to_the_run(devices, user, make_local_config, tmp_path):
    # given two items of a run that is still running, waiting for its device
    client = await devices(user, device_id="laptop")
    run, ids = await _two_waiting(user, make_local_config, tmp_path)

    # when the device's hello flush runs
    flushed = await outbox_flush_for_device(user_id=user.id, device_id="laptop")

    # then it leaves them to the run, which delivers and counts them before it finishes
    assert (flushed.delivered, rows(client)) == (0, [])
    delivering = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id)
    assert sorted(item.id for item in delivering) == sorted(ids)


async def _executor_died(run: AgentRunLog) -> None:
    """The run's worker died: nothing renews its lease, which has run out (the sweeper has not come yet)."""
    await sync_to_async(AgentRunLog.objects.filter(id=run.id).update)(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )


async def test_a_hello_flush_delivers_the_items_of_a_run_whose_worker_died(
    devices, device_server, user, make_local_config, tmp_path
):
    # given two items of a run still marked running, whose worker died (its lease ran out); made once
    # the device's own hello flush has ended (on a loaded box it could otherwise run after them and
    # deliver some of them itself, leaving fewer to the flush under test)
    client = await devices(user, device_id="laptop")
    await hello_work_done(device_server, user, "laptop")
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    await _executor_died(run)

    # when the device's hello flush runs, before the sweeper ends the run
    flushed = await outbox_flush_for_device(user_id=user.id, device_id="laptop")

    # then it delivers them (no run is left to do so) and counts them on their run
    assert flushed.delivered == 2
    assert sorted(t["id"] for t in rows(client)) == sorted(str(i) for i in ids)
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 2


async def test_a_hello_whose_running_runs_check_fails_still_flushes_its_outbox(
    devices, user, make_local_config, tmp_path, monkeypatch
):
    # given two items of a run whose worker died, and the hello's check of the device's running runs
    # (beside its outbox check) failing
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    await _executor_died(run)

    def broken(**kwargs):
        raise RuntimeError("database gone for this query")

    monkeypatch.setattr(selectors, "local_runs_running_on", broken)

    # when the device says hello
    client = await devices(user, device_id="laptop")

    # then its outbox is still flushed on the hello
    await wait_until(lambda: len(rows(client)) == 2, timeout=10)
    assert sorted(t["id"] for t in rows(client)) == sorted(str(i) for i in ids)


async def test_items_held_by_the_delivery_of_a_run_whose_worker_died_are_claimed_at_once(
    user, make_local_config, tmp_path
):
    # given two items held by their run's own delivery, and that run's worker died mid-delivery
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    assert len(await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id)) == 2
    await _executor_died(run)

    # when the device's hello flush claims, long before the hold would run out
    claimed = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", of_running_runs=False)

    # then the dead delivery's hold no longer keeps them
    assert sorted(i.id for i in claimed) == sorted(ids)


async def test_a_live_runs_hold_still_keeps_its_items(user, make_local_config, tmp_path):
    # given two items held by the delivery of a run whose worker is alive (its lease is current)
    run, _ids = await _two_waiting(user, make_local_config, tmp_path)
    assert len(await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id)) == 2

    # then neither another claim of the run nor a hello flush takes them
    assert await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id) == []
    assert await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", of_running_runs=False) == []


async def test_the_sweeper_releases_the_holds_of_the_runs_it_ends(user, make_local_config, tmp_path):
    from apps.agents.runs import runs_sweep_stale

    # given two items held by the delivery of a run whose worker died
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    assert len(await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", run_id=run.id)) == 2
    await _executor_died(run)

    # when the sweeper ends the run
    assert await sync_to_async(runs_sweep_stale)() == 1

    # then its items wait for the device's next hello, not for the dead delivery's hold
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).status == RunStatus.ERROR
    claimed = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", of_running_runs=False)
    assert sorted(i.id for i in claimed) == sorted(ids)


async def _run_ended(run: AgentRunLog) -> None:
    await sync_to_async(AgentRunLog.objects.filter(id=run.id).update)(status=RunStatus.SUCCESS, lease_expires_at=None)


async def test_a_hello_takes_over_at_once_the_items_a_dead_processs_hello_flush_held(
    devices, user, make_local_config, tmp_path
):
    # given two items of an ended run, held by the hello flush of a process that died mid-delivery:
    # its node never beats again (no liveness key), and the hold has minutes to run
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    await _run_ended(run)
    held = await sync_to_async(outbox_claim)(
        user_id=user.id, device_id="laptop", of_running_runs=False, node=f"4242-{uuid.uuid4().hex}"
    )
    assert len(held) == 2

    # when the device says hello to a live process
    client = await devices(user, device_id="laptop")

    # then its hello flush delivers them now, not once the dead flush's hold has run out
    await wait_until(lambda: len(rows(client)) == 2, timeout=10)
    assert sorted(t["id"] for t in rows(client)) == sorted(str(i) for i in ids)

    async def acknowledged() -> bool:
        return [item.status for item in await outbox(id__in=ids)] == [OutboxStatus.DELIVERED] * 2

    await wait_until(acknowledged, timeout=10)


async def test_a_live_processs_hello_flush_keeps_its_hold(devices, user, make_local_config, tmp_path):
    # given two items of an ended run, held by a hello flush of a live process (this one's node)
    client = await devices(user, device_id="laptop")
    run, _ids = await _two_waiting(user, make_local_config, tmp_path)
    await _run_ended(run)
    node = await loop_node()
    held = await sync_to_async(outbox_claim)(user_id=user.id, device_id="laptop", of_running_runs=False, node=node.name)
    assert len(held) == 2

    # when another flush of the device runs meanwhile
    flushed = await outbox_flush_for_device(user_id=user.id, device_id="laptop")

    # then it leaves them to the live holder
    assert (flushed.delivered, rows(client)) == (0, [])


async def test_a_hello_flush_cut_short_by_its_socket_closing_leaves_no_hold_behind(
    devices, user, make_local_config, tmp_path
):
    # given two items of an ended run, and a socket of their device that goes away while its hello
    # flush waits for the device to answer an insert
    run, ids = await _two_waiting(user, make_local_config, tmp_path)
    await _run_ended(run)
    first = await devices(user, device_id="laptop", hello=False)
    asked = asyncio.Event()

    async def never_answers(call):
        asked.set()

    first.tool_handler = never_answers
    await first.hello()
    await asyncio.wait_for(asked.wait(), 10)
    await first.close()

    # when the device comes back at once, well within the hold the flush took (4 call timeouts)
    again = await devices(user, device_id="laptop")

    # then its hello flush delivers them: the flush that was cut short gave its hold back
    await wait_until(lambda: len(rows(again)) == 2, timeout=6)
    assert sorted(t["id"] for t in rows(again)) == sorted(str(i) for i in ids)
