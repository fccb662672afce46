"""Hot read queries awaited on the web server's event loop, over psycopg's async connections.

An async view that reads through Django's ORM still sends each query to the request's thread
(Django's database layer is sync): one trip to the thread and back, and the wait for the answer in
that thread, hands the interpreter lock to the loop and back. For the reads every authenticated
request makes (the session check, a list page) those trips cost more CPU than the query itself. Here
such a read is sent on a connection of a per-loop ``psycopg_pool.AsyncConnectionPool`` and awaited
on the loop: the request never leaves it.

Only on the ASGI server's own loop (``PooledASGIHandler`` marks its requests with ``loop_reads()``),
and only when ``DATABASE_LOOP_READS`` is on: anywhere else (the test client, whose every request
runs on a loop of its own inside a transaction the pool cannot see; a management command) the same
read goes to the thread through the ORM's connection, as before. The pool's connections are made as
Django makes its own (the same parameters, type adapters and time zone), in autocommit: each read is
one statement. The reads asked in the same turn of the loop go out together, as one
multi-statement message (``DATABASE_LOOP_BATCH_MAX`` at most; ``apps.core.loop_batches``): under load,
one round trip's send, wakeup and receive cost the server more CPU than several reads. A
connection-level failure is Django's ``OperationalError`` (its cause the psycopg error), so the API
answers 503 ``database_unavailable`` as on the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg_pool import AsyncConnectionPool

from .loop_batches import loop_loader
from .loop_prepared import as_sent as prepared_as_sent
from .loop_prepared import forget as forget_prepared
from .loop_prepared import may_be_stale as prepared_may_be_stale
from .per_settings import PerSettings

_on_server_loop: contextvars.ContextVar[bool] = contextvars.ContextVar("loop_reads", default=False)
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncConnectionPool]] = (
    weakref.WeakKeyDictionary()
)


@contextmanager
def loop_reads() -> Iterator[None]:
    """Within it, ``on_server_loop()`` is True (the server's handler wraps each request in it)."""
    token = _on_server_loop.set(True)
    try:
        yield
    finally:
        _on_server_loop.reset(token)


def on_server_loop() -> bool:
    """Whether this request runs on the ASGI server's own loop (not a test client's loop of one call)."""
    return _on_server_loop.get()


def loop_reads_on() -> bool:
    """Whether a read of this request may be awaited on the loop (else: in the thread, by the ORM)."""
    return _on_server_loop.get() and settings.DATABASE_LOOP_READS


# Django's database wrapper for what a read on the loop asks of the database layer besides the query
# (a field's conversion of a value, the columns' converters, the error mapping): one per process and
# alias, never connected. On the loop, ``connections[using]`` belongs to the request's own context, so
# asking it made a new wrapper (backend operations, features, client) per request.
loop_wrapper: PerSettings[BaseDatabaseWrapper] = PerSettings(
    settings_of=lambda using: connections.settings[using], make=connections.create_connection
)


def _pool_kwargs(using: str) -> dict[str, Any]:
    wrapper = connections[using]  # only its settings are read: nothing connects on the loop
    params = wrapper.get_connection_params()
    params.pop("cursor_factory", None)  # Django's sync cursor; the async pool binds client-side as it does
    return {**params, "autocommit": True, "cursor_factory": psycopg.AsyncClientCursor}


def _configure(using: str) -> Any:
    wrapper = connections[using]

    async def configured(connection: psycopg.AsyncConnection[Any]) -> None:
        # As Django configures its own connections: the session's time zone, when it differs.
        zone = wrapper.timezone_name
        if zone and connection.info.parameter_status("TimeZone") != zone:
            await connection.execute(wrapper.ops.set_time_zone_sql(), [zone])

    return configured


async def loop_pool(using: str = "default") -> AsyncConnectionPool:
    """This loop's pool for ``using``, opened on first use (``DATABASE_LOOP_POOL_MAX_SIZE`` connections)."""
    loop = asyncio.get_running_loop()
    pools = _pools.setdefault(loop, {})
    pool = pools.get(using)
    if pool is None:
        pool = pools[using] = AsyncConnectionPool(
            kwargs=_pool_kwargs(using),
            min_size=1,
            max_size=settings.DATABASE_LOOP_POOL_MAX_SIZE,
            timeout=settings.DATABASES[using]["OPTIONS"].get("pool", {}).get("timeout", 10.0),
            configure=_configure(using),
            open=False,
            name=f"loop-reads-{using}",
        )
    if pool.closed:
        await pool.open()
    return pool


class _Read(NamedTuple):
    sql: str
    params: Any
    prepare: bool = False


async def _reads_run(using: str, reads: list[_Read]) -> list[Any]:
    """The rows of each read (or the error that read alone raised): several in one round trip.

    A connection lost under the batch (PostgreSQL restarted, the link dropped) costs no request an
    error: the pool's idle connections are checked (the broken ones dropped, new ones made) and the
    batch is asked once more. Reads are safe to ask again."""
    pool = await loop_pool(using)
    for attempt in (1, 2):
        # Bound client-side, as Django binds (the pool's cursor factory too): a batch is one text.
        async with pool.connection() as connection, psycopg.AsyncClientCursor(connection) as cursor:
            try:
                return await _answers(cursor, reads)
            except psycopg.Error:
                if attempt == 2 or not connection.broken:
                    raise
        await pool.check()
    raise AssertionError("not reached")


async def _answers(cursor: psycopg.AsyncClientCursor[Any], reads: list[_Read]) -> list[Any]:
    # One simple-query message of every statement, each bound client-side as it would be alone (a
    # prepared read as the EXECUTE of its statement); the answers come back in the same order, one
    # result set each.
    sent = [await _as_sent(cursor, read) for read in reads]
    try:
        await cursor.execute("; ".join(sent))
        answers = [await cursor.fetchall()]
        while cursor.nextset():
            answers.append(await cursor.fetchall())
        return answers
    except psycopg.Error as exc:
        if cursor.connection.broken:
            raise
        if prepared_may_be_stale(exc):
            # A prepared plan went stale (a migration changed a column's type), or the session lost
            # its statements: they are dropped, and prepared again by the next reads.
            await forget_prepared(cursor)
    # One statement failed (and the statements after it did not run): each read is asked again alone,
    # as text, so that only its own read gets its error.
    return [await _read_alone(cursor, read) for read in reads]


async def _as_sent(cursor: psycopg.AsyncClientCursor[Any], read: _Read) -> str:
    if read.prepare and settings.DATABASE_LOOP_PREPARE:
        return await prepared_as_sent(cursor, read.sql, read.params)
    return cursor.mogrify(read.sql, read.params)


async def _read_alone(cursor: psycopg.AsyncCursor[Any], read: _Read) -> Any:
    try:
        await cursor.execute(read.sql, read.params)
        return await cursor.fetchall()
    except psycopg.Error as exc:
        return exc


async def loop_fetchall(
    sql: str, params: Any, using: str = "default", *, prepare: bool = False
) -> list[tuple[Any, ...]]:
    """The rows of one read statement, run on this loop's pool in one round trip with the other reads
    asked in the same turn of the loop (``apps.core.loop_batches``); psycopg's errors arrive as
    Django's (``OperationalError``...). ``prepare``: run as a prepared statement of the connection
    (``apps.core.loop_prepared``, whose rule on the values' places the SQL must keep)."""
    batch_max = settings.DATABASE_LOOP_BATCH_MAX
    with loop_wrapper(using).wrap_database_errors:
        loader = loop_loader(("loop_db", using), partial(_reads_run, using), max_batch_size=batch_max)
        return await loader.load(_Read(sql, params, prepare))


async def loop_pools_close() -> None:
    """Close this loop's pools (a server's shutdown, a test's loop)."""
    for pool in _pools.pop(asyncio.get_running_loop(), {}).values():
        await pool.close()
