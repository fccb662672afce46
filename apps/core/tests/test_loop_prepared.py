"""The loop's hot reads run as prepared statements of each connection (apps.core.loop_prepared):
prepared once per connection, the same rows as sent as text, and a failure or a stale plan costs no
read its answer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, OperationalError, connection

from apps.accounts.models import TokenFamily, User
from apps.accounts.tokens import asession_is_active, tokens_issue
from apps.core import loop_db, loop_prepared
from apps.core.loop_prepared import statement
from apps.core.testing.held_transactions import held_transaction
from apps.core.testing.held_transactions import statement as sql_statement
from apps.storage.selectors import _RECORD_PAGE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_connection(settings):
    """The loop's pool holds one connection, so every read of the test meets the same one."""
    settings.DATABASE_LOOP_POOL_MAX_SIZE = 1


async def _prepared_on_the_connection() -> set[str]:
    rows = await loop_db.loop_fetchall("SELECT name FROM pg_prepared_statements", None)
    return {name for (name,) in rows}


async def _executed(sql: str) -> None:
    """``sql`` on the test's own connection, in its thread (a migration's statement, say)."""
    await sync_to_async(sql_statement(sql))()


@contextlib.asynccontextmanager
async def _table(name: str, columns: str) -> AsyncIterator[None]:
    """A table of the test's own for the block; dropped after it, once the loop's pool let go of it."""
    await _executed(f"CREATE TABLE {name} ({columns})")
    try:
        yield
    finally:
        await loop_db.loop_pools_close()
        await _executed(f"DROP TABLE {name}")


# The statement's form -------------------------------------------------------------------------------


def test_positional_placeholders_are_numbered_in_order_and_the_call_binds_as_many():
    form = statement('SELECT "a" FROM "t" WHERE "b" = %s AND "c" LIKE \'x%%\' LIMIT %s')

    assert form.prepare == f'PREPARE {form.name} AS SELECT "a" FROM "t" WHERE "b" = $1 AND "c" LIKE \'x%\' LIMIT $2'
    assert form.call == f"EXECUTE {form.name}(%s, %s)"


def test_a_named_placeholder_is_one_parameter_wherever_it_appears():
    form = statement("SELECT 1 FROM t WHERE a = %(user)s OR b = %(user)s AND c = %(kind)s")

    assert form.prepare.endswith("WHERE a = $1 OR b = $1 AND c = $2")
    assert form.call == f"EXECUTE {form.name}(%(user)s, %(kind)s)"


def test_a_statement_without_values_is_executed_without_parentheses():
    form = statement("SELECT 1")

    assert form.call == f"EXECUTE {form.name}"


def test_each_text_has_its_own_name_and_the_same_text_the_same_one():
    assert statement("SELECT %s::int").name == statement("SELECT %s::int").name
    assert statement("SELECT %s::int").name != statement("SELECT %s::bigint").name


def test_positional_and_named_placeholders_in_one_statement_are_refused():
    with pytest.raises(ValueError, match="all positional or all named"):
        statement("SELECT %s, %(x)s")


# On the connection ----------------------------------------------------------------------------------


async def test_a_prepared_read_is_prepared_once_per_connection_then_executed(
    on_the_loop, one_connection, statements_sent
):
    sql = "SELECT %s::int + 1, %s::text"
    form = statement(sql)

    first = await loop_db.loop_fetchall(sql, [1, "a"], prepare=True)
    second = await loop_db.loop_fetchall(sql, [41, "it's 100%"], prepare=True)

    assert first == [(2, "a")]
    assert second == [(42, "it's 100%")]
    reads = [text for text in statements_sent if form.name in text]
    assert reads == [form.prepare, f"EXECUTE {form.name}(1, 'a')", f"EXECUTE {form.name}(41, 'it''s 100%')"]
    assert form.name in await _prepared_on_the_connection()


async def test_prepared_reads_of_one_turn_are_one_message_of_executes(on_the_loop, one_connection, statements_sent):
    sql = "SELECT %(n)s::int * 2"
    await loop_db.loop_fetchall(sql, {"n": 0}, prepare=True)  # prepared on the pool's one connection
    statements_sent.clear()

    answers = await asyncio.gather(*(loop_db.loop_fetchall(sql, {"n": n}, prepare=True) for n in range(3)))

    assert answers == [[(0,)], [(2,)], [(4,)]]
    name = statement(sql).name
    assert statements_sent == [f"EXECUTE {name}(0); EXECUTE {name}(1); EXECUTE {name}(2)"]


async def test_a_read_not_asked_prepared_is_sent_as_text(on_the_loop, one_connection, statements_sent):
    assert await loop_db.loop_fetchall("SELECT %s::int", [5]) == [(5,)]

    assert statements_sent == ["SELECT 5::int"]


async def test_with_database_loop_prepare_off_a_prepared_read_is_sent_as_text(
    on_the_loop, one_connection, statements_sent, settings
):
    settings.DATABASE_LOOP_PREPARE = False

    assert await loop_db.loop_fetchall("SELECT %s::int", [6], prepare=True) == [(6,)]

    assert statements_sent == ["SELECT 6::int"]


async def test_a_read_the_database_refuses_fails_alone_and_leaves_the_statements(on_the_loop, one_connection):
    sql = "SELECT 10 / %s::int"
    assert await loop_db.loop_fetchall(sql, [2], prepare=True) == [(5,)]

    # when one read of a turn fails on its value
    failed, other = await asyncio.gather(
        loop_db.loop_fetchall(sql, [0], prepare=True),
        loop_db.loop_fetchall(sql, [5], prepare=True),
        return_exceptions=True,
    )

    # then only its caller gets the error, and the connection keeps its statements (nothing is stale)
    assert isinstance(failed, DataError)
    assert other == [(2,)]
    assert statement(sql).name in await _prepared_on_the_connection()


async def test_statements_the_session_lost_are_prepared_again(on_the_loop, one_connection, statements_sent):
    # given a statement prepared on the connection, then dropped behind this process's back (as a
    # pooler's DISCARD ALL would)
    sql = "SELECT %s::int * 3"
    assert await loop_db.loop_fetchall(sql, [1], prepare=True) == [(3,)]
    async with (await loop_db.loop_pool()).connection() as lost:
        await lost.execute("DEALLOCATE ALL")

    # when it is read again, and once more
    again = await loop_db.loop_fetchall(sql, [2], prepare=True)
    after = await loop_db.loop_fetchall(sql, [3], prepare=True)

    # then the read that met "prepared statement does not exist" was answered as text, and the next
    # one prepared the statement again
    assert (again, after) == ([(6,)], [(9,)])
    assert statements_sent.count(statement(sql).prepare) == 2
    assert statement(sql).name in await _prepared_on_the_connection()


async def test_a_plan_made_stale_by_a_migration_costs_no_read_its_answer(on_the_loop, one_connection):
    # given a read prepared on the connection (PostgreSQL keeps its result's columns and types)
    async with _table("loop_prepared_probe", "id int PRIMARY KEY, size int"):
        await _executed("INSERT INTO loop_prepared_probe VALUES (1, 7)")
        sql = "SELECT size FROM loop_prepared_probe WHERE id = %s"
        assert await loop_db.loop_fetchall(sql, [1], prepare=True) == [(7,)]

        # when a migration changes the column's type (its prepared plan "must not change result type")
        await _executed("ALTER TABLE loop_prepared_probe ALTER COLUMN size TYPE text")

        # then the read still answers, with the new type, and the statement is prepared afresh
        assert await loop_db.loop_fetchall(sql, [1], prepare=True) == [("7",)]
        assert await loop_db.loop_fetchall(sql, [1], prepare=True) == [("7",)]
        assert statement(sql).name in await _prepared_on_the_connection()


async def test_a_statement_postgres_will_not_prepare_is_sent_as_text_from_then_on(
    on_the_loop, one_connection, statements_sent
):
    sql = "SHOW TimeZone"  # a utility statement: PREPARE refuses it

    first = await loop_db.loop_fetchall(sql, None, prepare=True)
    second = await loop_db.loop_fetchall(sql, None, prepare=True)

    assert first == second == [(connection.timezone_name,)]
    assert statements_sent.count(statement(sql).prepare) == 1
    assert statements_sent.count(sql) == 2


async def test_a_prepare_that_failed_for_the_moment_is_tried_again_on_a_later_read(
    on_the_loop, one_connection, statements_sent
):
    # given a table locked by a migration's transaction, and the loop's connection waiting 100 ms for locks
    sql = "SELECT id FROM loop_prepared_locked WHERE id = %s"
    async with _table("loop_prepared_locked", "id int PRIMARY KEY"):
        await loop_db.loop_fetchall("SELECT set_config('lock_timeout', '100ms', false)", None)
        locked = sql_statement("LOCK TABLE loop_prepared_locked IN ACCESS EXCLUSIVE MODE")
        async with held_transaction(locked) as release:
            # when a prepared read of it times out on the lock (PREPARE, then the read as text)
            with pytest.raises(OperationalError):
                await loop_db.loop_fetchall(sql, [1], prepare=True)
            release()

        # then the statement was not given up on: once the lock is gone it is prepared and answers
        assert await loop_db.loop_fetchall(sql, [1], prepare=True) == []
        assert statements_sent.count(statement(sql).prepare) == 2
        assert statement(sql).name in await _prepared_on_the_connection()


async def test_a_statement_prepared_by_a_batch_that_never_heard_the_answer_is_used(
    on_the_loop, one_connection, statements_sent
):
    # given the connection holds the statement, but this process never recorded it (the batch that
    # prepared it was cancelled before the answer came)
    sql = "SELECT %s::int - 1"
    form = statement(sql)
    async with (await loop_db.loop_pool()).connection() as connection_:
        await connection_.execute(form.prepare)
    statements_sent.clear()

    # when it is read prepared, twice
    first = await loop_db.loop_fetchall(sql, [5], prepare=True)
    second = await loop_db.loop_fetchall(sql, [7], prepare=True)

    # then PostgreSQL's "already exists" counted as prepared: both reads ran as its EXECUTE
    assert (first, second) == ([(4,)], [(6,)])
    assert statements_sent.count(form.prepare) == 1
    assert [text for text in statements_sent if text.startswith(f"EXECUTE {form.name}")] == [
        f"EXECUTE {form.name}(5)",
        f"EXECUTE {form.name}(7)",
    ]


async def test_a_connection_keeps_a_bounded_number_of_statements(on_the_loop, one_connection, monkeypatch):
    monkeypatch.setattr(loop_prepared, "MAX_PREPARED_PER_CONNECTION", 2)
    texts = [f"SELECT %s::int + {n}" for n in range(3)]

    for n, sql in enumerate(texts):
        assert await loop_db.loop_fetchall(sql, [1], prepare=True) == [(1 + n,)]

    # the third statement found two prepared: they were dropped, and it alone is prepared now
    assert await _prepared_on_the_connection() == {statement(texts[2]).name}


async def test_the_session_check_runs_prepared_on_the_loop(on_the_loop, one_connection, statements_sent):
    user = await sync_to_async(User.objects.create_user)(email="prepared@example.com")
    await sync_to_async(tokens_issue)(user=user)
    family = await TokenFamily.objects.aget(user=user)

    active = await asession_is_active(user_id=str(user.id), family_id=str(family.id), with_email_verified=True)
    revoked = await asession_is_active(user_id=str(user.id), family_id=str(uuid.uuid4()))

    assert active is not None
    assert active.pk == user.pk
    assert revoked is None
    executes = [text for text in statements_sent if text.startswith("EXECUTE adiuva_")]
    assert len(executes) == 2
    assert all(user.id.hex in text for text in executes)


async def test_a_list_page_is_sent_as_text_since_its_plan_depends_on_the_owners_rows(
    on_the_loop, one_connection, statements_sent
):
    user = await sync_to_async(User.objects.create_user)(email="pages@example.com")

    assert await _RECORD_PAGE.arows(user_id=user.id, limit=20, offset=0) == []

    assert statements_sent
    assert not [text for text in statements_sent if text.startswith(("PREPARE", "EXECUTE"))]
