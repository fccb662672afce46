"""The loop's hot reads as PostgreSQL prepared statements: parsed and planned once per connection.

Every authenticated request sends the session check, and a request for one item or record its lookup,
as the same SQL with new values. Sent as text, PostgreSQL parses, analyses and plans each one again: for the session
check (a join and an ``EXISTS``) ~250 µs of the database's CPU on a 2-core box, against ~70 µs for
executing it prepared, and the database shares the box's cores with the web process. A read asked
with ``prepare=True`` is sent as ``EXECUTE name(values)`` instead, its ``PREPARE name AS …`` sent on
a connection the first time that connection runs it.

This is SQL's own ``PREPARE``/``EXECUTE``, not the extended protocol's: the values stay bound
client-side (as Django binds them, ``psycopg.AsyncClientCursor``), so a batch of reads is still one
simple-query message (``apps.core.loop_db``), which costs the web process less CPU than psycopg's
pipeline of prepared statements (measured: ~32 against ~65 µs a read in batches of four).

What a caller must know:

- PostgreSQL infers each parameter's type where ``PREPARE`` finds it, and an ``EXECUTE``'s values are
  converted to those types. A prepared read's values must be placed where their type is fixed (compared
  with a column): a bare ``SELECT %s`` would answer text, whatever was bound.
- The saving is the plan: after five executions PostgreSQL keeps a generic plan, made without the
  values (measured: with ``plan_cache_mode = force_custom_plan`` a prepared read costs the database as
  much as text). So only reads whose best plan is the same for every value are prepared: a row by its
  keys (the session check, an owned item or record: ``CompiledQuery.afirst``) and the memory counts (a
  user's tally rows). A list page is not: its best plan depends on how many rows the owner has (an
  index walk in order for many, a sort of a few), and a generic plan made for the average user sorted
  every row of a user with thousands.
- A statement PostgreSQL refuses to prepare (SQLSTATE class 42, or not supported) is remembered in this
  process and sent as text from then on; one whose ``PREPARE`` failed for the moment (a lock timeout) is
  sent as text this time and prepared on a later read.
- A read that failed in a way a prepared statement can (``may_be_stale``: a plan made stale by a
  migration that changed a column's type, a statement the session lost, a column or table gone) makes
  the caller drop every statement prepared on that connection (``forget``); the next reads prepare them
  again. Other errors (a value the database refuses, a timeout) leave them.
- ``DATABASE_LOOP_PREPARE`` off sends every read as text, as before (for a pooler in transaction
  mode that keeps no prepared statements between transactions).
"""

from __future__ import annotations

import hashlib
import logging
import re
import weakref
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import psycopg
import psycopg.errors

logger = logging.getLogger(__name__)

# A connection keeps at most this many statements; past it, they are dropped and prepared again as used.
MAX_PREPARED_PER_CONNECTION = 128
# SQL texts PostgreSQL refused to prepare: sent as text (at most this many remembered).
_MAX_UNPREPARABLE = 256

# psycopg's placeholders: %s, %(name)s (and %b / %t, their binary and text forms), %% a percent sign.
_PLACEHOLDER = re.compile(r"%%|%(?:\((?P<name>[^)]+)\))?[sbt]")

_prepared_on: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], set[str]] = weakref.WeakKeyDictionary()
_unpreparable: set[str] = set()


class Statement(NamedTuple):
    name: str
    prepare: str  # PREPARE name AS the SQL, its placeholders numbered ($1…)
    call: str  # EXECUTE name(%s, …): bound like the SQL's own placeholders (positional or named)


@lru_cache(maxsize=512)
def statement(sql: str) -> Statement:
    """The prepared form of ``sql``: its name (from a digest of the text), ``PREPARE`` and ``EXECUTE``."""
    numbers: dict[str, int] = {}  # a named placeholder is one parameter wherever it appears
    order: list[str] = []
    positional = 0

    def numbered(match: re.Match[str]) -> str:
        nonlocal positional
        if match.group(0) == "%%":
            return "%"
        name = match.group("name")
        if name is None:
            positional += 1
            return f"${positional}"
        if name not in numbers:
            numbers[name] = len(numbers) + 1
            order.append(name)
        return f"${numbers[name]}"

    body = _PLACEHOLDER.sub(numbered, sql)
    if positional and numbers:
        raise ValueError("a statement's placeholders are all positional or all named")
    name = "adiuva_" + hashlib.blake2b(sql.encode(), digest_size=10).hexdigest()
    arguments = ", ".join([f"%({argument})s" for argument in order] if numbers else ["%s"] * positional)
    call = f"EXECUTE {name}({arguments})" if arguments else f"EXECUTE {name}"  # no parentheses for none
    return Statement(name, f"PREPARE {name} AS {body}", call)


async def as_sent(
    cursor: psycopg.AsyncClientCursor[Any], sql: str, params: Sequence[Any] | Mapping[str, Any] | None
) -> str:
    """``sql`` as this connection runs it prepared: its ``EXECUTE`` with the values bound (the
    statement prepared first, if the connection has not prepared it yet); or ``sql`` itself, bound,
    when PostgreSQL would not prepare it."""
    if sql in _unpreparable:
        return cursor.mogrify(sql, params)
    prepared = _prepared_on.setdefault(cursor.connection, set())
    form = statement(sql)
    if form.name not in prepared:
        if len(prepared) >= MAX_PREPARED_PER_CONNECTION:
            await forget(cursor)
            prepared = _prepared_on.setdefault(cursor.connection, set())
        try:
            await cursor.execute(form.prepare)
        except psycopg.errors.DuplicatePreparedStatement:
            pass  # prepared by an earlier batch that never heard the answer (cancelled under it): it is there
        except psycopg.Error as exc:
            if cursor.connection.broken:
                raise
            if isinstance(exc, psycopg.ProgrammingError | psycopg.NotSupportedError):
                # The statement itself (a utility statement, say): it would be refused on every connection.
                logger.warning("PostgreSQL will not prepare a loop read; it is sent as text", exc_info=True)
                if len(_unpreparable) >= _MAX_UNPREPARABLE:
                    _unpreparable.clear()
                _unpreparable.add(sql)
            # Otherwise the moment (a lock timeout behind a migration): prepared on a later read.
            return cursor.mogrify(sql, params)
        prepared.add(form.name)
    return cursor.mogrify(form.call, params)


def may_be_stale(error: psycopg.Error) -> bool:
    """Whether ``error`` may come from a statement prepared before the schema or the session changed:
    "cached plan must not change result type" (0A000), "prepared statement does not exist" (26000),
    or a name the statement held that is gone (class 42: an undefined column or table)."""
    return isinstance(error, psycopg.errors.FeatureNotSupported | psycopg.errors.InvalidSqlStatementName) or (
        error.sqlstate or ""
    ).startswith("42")


async def forget(cursor: psycopg.AsyncClientCursor[Any]) -> None:
    """Drop every statement prepared on the cursor's connection (a read failed on it: a plan may be stale)."""
    if _prepared_on.pop(cursor.connection, None):
        await cursor.execute("DEALLOCATE ALL")
