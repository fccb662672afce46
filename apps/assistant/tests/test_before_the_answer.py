"""The work before a socket turn's first model request: memory is read while the budget's hold is
taken, and the query's embedding (a model request) is made after the hold, only for a user with
associative memories to search."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async

from apps.assistant.testing.scripted_openai import embed_text, text
from apps.billing.budgets import llm_budget_override_set
from apps.billing.models import LlmBudgetPeriod
from apps.core.testing.held_transactions import held_transaction, statement
from apps.devices.tests.conftest import wait_until
from apps.memory.models import CoreMemory
from apps.memory.services import associative_memory_add, core_memory_set

from .conftest import home, types

pytestmark = pytest.mark.django_db(transaction=True)


def table_locked(model) -> contextlib.AbstractAsyncContextManager[Callable[[], None]]:
    """Hold ``model``'s table locked (no reads either) in a transaction of a thread of its own."""
    sql = f'LOCK TABLE "{model._meta.db_table}" IN ACCESS EXCLUSIVE MODE'
    return held_transaction(statement(sql), what=sql)


async def waiting_queries() -> list[str]:
    """The statements of this database's backends waiting on a lock now (asked on a connection of its own)."""

    def read() -> list[str]:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return [row[0] for row in cursor.fetchall()]
        finally:
            connection.close()

    return await asyncio.to_thread(read)


async def test_memory_is_read_while_the_budgets_hold_waits(devices, user, llm):
    # given a user with a budget (so the turn takes a hold) and core memory, and both the budget's
    # months and the core memories locked by other transactions
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=100_000, actor=None)
    await sync_to_async(core_memory_set)(user_id=user.id, key="timezone", value="Europe/Rome")
    client = await devices(user)
    llm.script(text("Noted."))
    async with table_locked(LlmBudgetPeriod) as release_budget, table_locked(CoreMemory) as release_memory:
        # when a turn starts
        turn = asyncio.ensure_future(home(client, "what time is it?"))

        # then the memory read waits on its lock while the hold still waits on its own
        async def both_waiting() -> bool:
            queries = await waiting_queries()
            return any("billing_llmbudgetperiod" in q for q in queries) and any(
                "memory_corememory" in q for q in queries
            )

        await wait_until(both_waiting, timeout=10)
        assert llm.requests == []  # nothing reached the model before the hold
        release_memory()
        release_budget()
        frames = await turn

    # and the turn answers with what memory holds
    assert types(frames)[-1] == "stream_end"
    assert "Europe/Rome" in llm.chat_requests()[0].system_prompt


async def test_a_user_without_associative_memories_gets_no_query_embedding(devices, user, llm):
    # given a user with core memory and no associative memory
    await sync_to_async(core_memory_set)(user_id=user.id, key="timezone", value="Europe/Rome")
    client = await devices(user)
    llm.script(text("Noted."))

    # when
    frames = await home(client, "which coffee do I like?")

    # then the model saw the core memory and no embedding was asked for
    assert types(frames)[-1] == "stream_end"
    assert "Europe/Rome" in llm.chat_requests()[0].system_prompt
    assert llm.embedding_requests() == []


async def test_a_user_with_associative_memories_gets_them_searched_by_the_query_embedding(devices, user, llm):
    # given one associative memory
    await sync_to_async(associative_memory_add)(
        user_id=user.id, content="User drinks espresso coffee every morning", embedding=embed_text("espresso coffee")
    )
    client = await devices(user)
    llm.script(text("Espresso."))

    # when
    await home(client, "which coffee do I like?")

    # then the query was embedded and the memory found
    assert [r.body["input"] for r in llm.embedding_requests()] == [["which coffee do I like?"]]
    assert "User drinks espresso coffee every morning" in llm.chat_requests()[0].system_prompt
