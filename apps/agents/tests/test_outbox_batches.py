"""A run writes its outbox a batch at a time: values that arrive while a write is under way go into
the next one together, each caller gets its own answer, and an item is still counted once."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError

from apps.agents import outbox as outbox_module
from apps.agents import run_pipeline
from apps.agents.extraction import ProposedItem
from apps.agents.models import AgentRunLog, OutboxStatus, RunStatus
from apps.agents.outbox import outbox_items_create, outbox_items_delivered
from apps.billing.models import LlmUsage
from apps.core.testing.held_transactions import held_transaction

from .conftest import execute, make_local, one_task_per_file, outbox, rows, start_run, write_files


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_acknowledgements_counts_each_item_once(user):
    # given three stored items of one run
    config = make_local(user)
    run = AgentRunLog.objects.create(user=user, agent_type="local", agent_id=config.id, status=RunStatus.RUNNING)
    ids = [uuid.uuid4() for _ in range(3)]
    outbox_items_create(
        user_id=user.id,
        run_id=run.id,
        device_id="laptop",
        items=[(i, ProposedItem("tasks", {"title": f"t{n}"})) for n, i in enumerate(ids)],
    )

    # when a batch acknowledges the first one twice and the second once, then another batch repeats both
    first = outbox_items_delivered(acks=[(ids[0], run.id), (ids[1], run.id), (ids[0], run.id)])
    again = outbox_items_delivered(acks=[(ids[0], run.id), (ids[1], run.id)])

    # then each item counts once on its run, and the third is still pending
    assert first == [True, True, False]
    assert again == [False, False]
    run.refresh_from_db()
    assert run.items_created == 2
    statuses = dict(outbox_module.OutboxItem.objects.filter(id__in=ids).values_list("id", "status"))
    assert [statuses[i] for i in ids] == [OutboxStatus.DELIVERED, OutboxStatus.DELIVERED, OutboxStatus.PENDING]


async def in_thread(function, /, **kwargs):
    """``function`` on a thread of its own with its own connection (closed after), as another process's."""

    def call():
        from django.db import connection

        try:
            return function(**kwargs)
        finally:
            connection.close()

    return await asyncio.to_thread(call)


@pytest.mark.django_db(transaction=True)
async def test_an_acknowledgement_batch_waiting_on_an_item_another_batch_delivers_counts_only_its_other_items(user):
    # given two stored items of one run, and another batch (a hello flush) that has just delivered
    # the first one in a transaction still open: it holds that row
    config = await sync_to_async(make_local)(user)
    run = await sync_to_async(AgentRunLog.objects.create)(
        user=user, agent_type="local", agent_id=config.id, status=RunStatus.RUNNING
    )
    first, second = uuid.uuid4(), uuid.uuid4()
    await sync_to_async(outbox_items_create)(
        user_id=user.id,
        run_id=run.id,
        device_id="laptop",
        items=[(first, ProposedItem("tasks", {"title": "a"})), (second, ProposedItem("tasks", {"title": "b"}))],
    )

    def other_batch() -> None:
        assert outbox_items_delivered(acks=[(first, run.id)]) == [True]

    async with held_transaction(other_batch, what="the other batch") as commit:
        # when the run's own batch acknowledges both (it waits for the held row), and the other commits
        ours = asyncio.ensure_future(in_thread(outbox_items_delivered, acks=[(first, run.id), (second, run.id)]))
        await asyncio.sleep(0.3)
        assert not ours.done()  # waiting for the row the other batch holds
        commit()
        answers = await asyncio.wait_for(ours, 10)

    # then the item the other batch delivered is not counted again; the run counts each item once
    assert answers == [False, True]
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 2
    assert {item.status for item in await outbox(run_id=run.id)} == {OutboxStatus.DELIVERED}


@pytest.mark.django_db(transaction=True)
def test_a_stored_batch_answers_only_the_rows_it_added_in_its_order_and_encrypted(user):
    # given an item already delivered (payload dropped) and one still pending
    config = make_local(user)
    run = AgentRunLog.objects.create(user=user, agent_type="local", agent_id=config.id, status=RunStatus.RUNNING)
    delivered, pending = uuid.uuid4(), uuid.uuid4()
    outbox_items_create(
        user_id=user.id,
        run_id=run.id,
        device_id="laptop",
        items=[(delivered, ProposedItem("tasks", {"title": "old"})), (pending, ProposedItem("tasks", {"title": "p"}))],
    )
    outbox_items_delivered(acks=[(delivered, run.id)])
    fresh = [uuid.uuid4() for _ in range(3)]

    # when a batch proposes them again among new ones, one new id twice
    batch = [
        (fresh[0], ProposedItem("tasks", {"title": "n0"})),
        (delivered, ProposedItem("tasks", {"title": "old"})),
        (fresh[1], ProposedItem("notes", {"title": "n1"})),
        (pending, ProposedItem("tasks", {"title": "p"})),
        (fresh[0], ProposedItem("tasks", {"title": "n0 again"})),
        (fresh[2], ProposedItem("tasks", {"title": "n2"})),
    ]
    stored = outbox_module.outbox_items_store(user_id=user.id, run_id=run.id, device_id="laptop", items=batch)

    # then only the new rows come back, once each, in their order, with their data (the first of a repeated id)
    assert [(item.id, item.table, item.data["title"]) for item in stored] == [
        (fresh[0], "tasks", "n0"),
        (fresh[1], "notes", "n1"),
        (fresh[2], "tasks", "n2"),
    ]
    # and the outbox holds each id once; the delivered one stays delivered, without its content
    rows_by_id = {row.id: row for row in outbox_module.OutboxItem.objects.filter(user=user)}
    assert len(rows_by_id) == 5
    assert (rows_by_id[delivered].status, bytes(rows_by_id[delivered].payload_ciphertext)) == ("delivered", b"")
    # and the new rows keep their order for a later claim, encrypted with the user's key
    claimed = outbox_module.outbox_claim(user_id=user.id, device_id="laptop", item_ids=fresh)
    assert [item.id for item in claimed] == fresh
    assert [item.data["title"] for item in claimed] == ["n0", "n1", "n2"]
    # (the plaintext's JSON key, which no Fernet token can hold by chance: a 2-byte title could)
    assert all(b'"title"' not in bytes(rows_by_id[i].payload_ciphertext) for i in fresh)


@pytest.mark.django_db(transaction=True)
async def test_a_run_stores_and_acknowledges_its_rows_in_fewer_writes_than_rows(
    devices, user, llm, make_local_config, tmp_path, monkeypatch, settings
):
    # given twenty files, and a database slow enough that rows queue up behind each write
    settings.AGENTS_EXTRACTION_CONCURRENCY = 8
    settings.AGENTS_DELIVERY_CONCURRENCY = 8
    write_files(tmp_path / "inbox", 20)
    client = await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path / "inbox")])
    llm.fallback = one_task_per_file
    stores: list[int] = []
    acks: list[int] = []
    store, ack = run_pipeline.outbox_items_store, outbox_module._acks_write

    def slow_store(**kwargs):
        items = list(kwargs.pop("items"))
        stores.append(len(items))
        time.sleep(0.05)
        return store(items=items, **kwargs)

    def slow_ack(batch):
        acks.append(len(batch))
        time.sleep(0.05)
        return ack(batch)

    monkeypatch.setattr(run_pipeline, "outbox_items_store", slow_store)
    monkeypatch.setattr(outbox_module, "_acks_write", slow_ack)

    # when the run executes
    run = await execute(await start_run(config))

    # then every row is on the device once and counted once
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.SUCCESS, 20, 20)
    assert sorted(t["title"] for t in rows(client)) == sorted(f"Follow up note {i}" for i in range(20))
    assert not await outbox(run_id=run.id, status=OutboxStatus.PENDING)
    # and the outbox was written in batches: fewer writes than rows, each row in one of them (the
    # device's hello flush may deliver some of the run's rows too: their repeats are acknowledged again)
    assert sum(stores) == 20
    assert len(stores) < 20
    assert sum(acks) >= 20
    assert len(acks) < sum(acks)
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).items_created == 20


@pytest.mark.django_db(transaction=True)
async def test_items_the_database_could_not_store_are_reported_and_their_calls_still_metered(
    devices, user, llm, make_local_config, tmp_path, monkeypatch
):
    # given two files, and an outbox the database refuses to write
    write_files(tmp_path / "inbox", 2)
    await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path / "inbox")])
    llm.fallback = one_task_per_file

    def refused(**kwargs):
        raise DatabaseError("could not extend file: No space left on device")

    monkeypatch.setattr(run_pipeline, "outbox_items_store", refused)

    # when the run executes
    run = await execute(await start_run(config))

    # then the run names both files whose items were lost, instead of reporting success
    assert run.status != RunStatus.SUCCESS
    assert sum("could not be stored" in error for error in run.errors) == 2
    # and both model calls are still counted
    assert await LlmUsage.objects.filter(run_id=str(run.id)).acount() == 2
