"""Running tallies of a table's rows, kept by PostgreSQL in the writing transaction.

A list's "how many in all" and a quota's "how many bytes in all" are a count or a sum over every
row of the user: a scan that grows with the user's size, on every page and every write. A tally
table holds those figures per owner (and per group, as a record's table), and statement-level
triggers on the source table move them in the same transaction as the rows: every path that writes
the rows (the ORM's saves and bulk operations, cascades, raw SQL, the admin) keeps them exact, and a
reader sees the tally and the rows of one snapshot.

- An INSERT adds its rows' counts and sums to their groups' tally rows, creating them; an UPDATE
  moves them by the difference (no lock is taken when nothing counted changed); a DELETE takes
  them off rows that exist and never creates one, so deleting a user's rows after their tally rows
  (the order of Django's cascade is not fixed) leaves nothing behind.
- A writer holds its groups' tally rows locked to its commit, so writers of one owner's group
  queue. Inserts and updates lock them in key order (the upsert's input is sorted); a delete's
  UPDATE has no set order, so writers that delete several groups of one owner at once should be
  serialized otherwise (storage writes hold the user's quota lock).
- Statement-level triggers with transition tables: a bulk statement costs one grouped upsert, not
  one per row.

``tally_triggers`` returns the migration operation. Migrations call it, so the SQL it writes for a
given set of arguments must not change: a different shape is a new migration with new arguments.

Each app also registers what it tallies (``register_tally``, from its ``ready``) so that
``manage.py tallies_check`` can compare every tally with its rows (``tally_drift``) and set it
right (``tally_repair``): for a database whose triggers were bypassed (a data-only restore with
``--disable-triggers``, ``session_replication_role = replica``, a trigger disabled by hand). Celery
beat runs the same check nightly (``core.tallies_check``, ``tallies_audit``): a drift is logged and
counted (``adiuva_tally_drift_total``), and repaired only with ``TALLIES_AUTO_REPAIR``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, migrations, transaction

from . import metrics

logger = logging.getLogger(__name__)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Tally:
    """One tallied source: ``sums`` maps each column of the ``tally`` table to the source expression
    summed into it (``"1"`` counts rows), per group of ``keys`` (columns of both tables); ``fixed``
    maps further key columns of the tally to the SQL literal every row of this source has there
    (one tally table over several sources). A migration gives its own copy to ``tally_triggers``;
    the app registers another (``register_tally``) for the check."""

    source: str
    tally: str
    keys: tuple[str, ...]
    sums: Mapping[str, str]
    fixed: Mapping[str, str] = field(default_factory=dict)

    @property
    def _key_columns(self) -> str:
        return ", ".join(_quoted(key) for key in (*self.keys, *self.fixed))

    @property
    def _own_rows(self) -> str:
        """The tally rows of this source (a tally may hold several sources' rows, by ``fixed``)."""
        return " AND ".join([f"{_quoted(key)} = {literal}" for key, literal in self.fixed.items()] or ["TRUE"])

    def _counted(self, rows: str = "") -> str:
        """Each group's figures computed from ``rows`` (the source's, unless named: a transition table)."""
        keys = ", ".join(_quoted(key) for key in self.keys)
        constants = "".join(f", {literal} AS {_quoted(key)}" for key, literal in self.fixed.items())
        totals = ", ".join(f"sum({expression}) AS {_quoted(column)}" for column, expression in self.sums.items())
        return f"SELECT {keys}{constants}, {totals} FROM {rows or _quoted(self.source)} GROUP BY {keys}"  # noqa: S608


def tally_triggers(tally: Tally, *, backfill: bool = True, on_update: bool = True) -> migrations.RunSQL:
    """The triggers that keep ``tally.tally`` equal to ``tally.sums`` over ``tally.source``'s rows,
    grouped by its keys (the tally table is unique on ``keys`` and ``fixed``'s columns).

    With ``backfill`` the tally is filled from the rows already there, in the migration's
    transaction, after the triggers are made (CREATE TRIGGER waits for the table's writers and holds
    them off until the commit, so no write falls between the two). Without ``on_update`` no UPDATE
    trigger is made: for a source whose keys and summed columns never change once written, whose
    other columns are updated often (an UPDATE trigger runs on every statement)."""
    source, keys, sums, fixed = tally.source, tally.keys, tally.sums, tally.fixed
    function = _quoted(f"{source}_tally")
    source_keys = ", ".join(_quoted(key) for key in keys)
    tally_keys = tally._key_columns
    constants = "".join(f", {literal}" for literal in fixed.values())
    columns = ", ".join(_quoted(column) for column in sums)
    moved = ", ".join(f"{_quoted(c)} = t.{_quoted(c)} + EXCLUDED.{_quoted(c)}" for c in sums)

    def grouped(rows: str) -> str:
        return f"{tally._counted(rows)} ORDER BY {source_keys}"

    def upsert(select: str) -> str:
        return (
            f"INSERT INTO {_quoted(tally.tally)} AS t ({tally_keys}, {columns}) {select} "
            f"ON CONFLICT ({tally_keys}) DO UPDATE SET {moved};"
        )

    differences = ", ".join(f"sum(d.{_quoted(c)}) AS {_quoted(c)}" for c in sums)
    signed_new = ", ".join(f"({expression}) AS {_quoted(c)}" for c, expression in sums.items())
    signed_old = ", ".join(f"-({expression}) AS {_quoted(c)}" for c, expression in sums.items())
    changed = " OR ".join(f"sum(d.{_quoted(c)}) <> 0" for c in sums)
    d_keys = ", ".join(f"d.{_quoted(key)}" for key in keys)
    update_select = (
        f"SELECT {d_keys}{constants}, {differences} FROM (SELECT {source_keys}, {signed_new} FROM new_rows "  # noqa: S608
        f"UNION ALL SELECT {source_keys}, {signed_old} FROM old_rows) d "
        f"GROUP BY {d_keys} HAVING {changed} ORDER BY {d_keys}"
    )
    taken_off = ", ".join(f"{_quoted(c)} = t.{_quoted(c)} - o.{_quoted(c)}" for c in sums)
    old_totals = ", ".join(f"sum({expression}) AS {_quoted(c)}" for c, expression in sums.items())
    matched = " AND ".join(
        [f"t.{_quoted(key)} = o.{_quoted(key)}" for key in keys]
        + [f"t.{_quoted(key)} = {literal}" for key, literal in fixed.items()]
    )
    delete = (
        f"UPDATE {_quoted(tally.tally)} AS t SET {taken_off} FROM (SELECT {source_keys}, {old_totals} FROM old_rows "  # noqa: S608
        f"GROUP BY {source_keys} ORDER BY {source_keys}) o WHERE {matched};"
    )
    source_name = _quoted(source)
    trigger = f"{source}_tally_on_"
    events = ("insert", "update", "delete") if on_update else ("insert", "delete")
    sql = [
        f"""CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $tally$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {upsert(grouped("new_rows"))}
    ELSIF TG_OP = 'UPDATE' THEN
        {upsert(update_select)}
    ELSE
        {delete}
    END IF;
    RETURN NULL;
END
$tally$;""",
        f"CREATE TRIGGER {_quoted(trigger + 'insert')} AFTER INSERT ON {source_name} "
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}();",
        f"CREATE TRIGGER {_quoted(trigger + 'delete')} AFTER DELETE ON {source_name} "
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}();",
    ]
    if on_update:
        sql.append(
            f"CREATE TRIGGER {_quoted(trigger + 'update')} AFTER UPDATE ON {source_name} REFERENCING OLD TABLE "
            f"AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
        )
    if backfill:
        sql.append(upsert(grouped(source_name)))
    reverse = [
        *(f"DROP TRIGGER {_quoted(trigger + event)} ON {source_name};" for event in events),
        f"DROP FUNCTION {function}();",
    ]
    return migrations.RunSQL(tuple(sql), reverse_sql=tuple(reverse))


_TALLIES: list[Tally] = []


def register_tally(tally: Tally) -> None:
    """Declare a source that ``tallies_check`` looks at (an app's ``ready``)."""
    if tally not in _TALLIES:
        _TALLIES.append(tally)


def registered_tallies() -> list[Tally]:
    return list(_TALLIES)


def tally_drift(tally: Tally, *, limit: int = 20) -> list[dict[str, Any]]:
    """The groups (at most ``limit``) whose tally row differs from their rows: each with its keys,
    and per summed column the tallied and the counted figure (a missing row counts as 0)."""
    columns = list(tally.sums)
    differs = " OR ".join(f"coalesce(t.{_quoted(c)}, 0) <> coalesce(r.{_quoted(c)}, 0)" for c in columns)
    figures = ", ".join(
        f"coalesce({side}.{_quoted(c)}, 0) AS {_quoted(f'{name}_{c}')}"
        for c in columns
        for side, name in (("t", "tallied"), ("r", "counted"))
    )
    sql = (
        f"SELECT {tally._key_columns}, {figures} FROM ({tally._counted()}) r FULL JOIN "  # noqa: S608
        f"(SELECT * FROM {_quoted(tally.tally)} WHERE {tally._own_rows}) t USING ({tally._key_columns}) "
        f"WHERE {differs} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def tally_repair(tally: Tally) -> None:
    """Set the source's tally rows to what its rows say, with the source's writers held off meanwhile
    (SHARE ROW EXCLUSIVE: reads go on, writes wait for the commit)."""
    columns = ", ".join(_quoted(column) for column in tally.sums)
    zeroed = ", ".join(f"{_quoted(column)} = 0" for column in tally.sums)
    replaced = ", ".join(f"{_quoted(column)} = EXCLUDED.{_quoted(column)}" for column in tally.sums)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {_quoted(tally.source)} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"UPDATE {_quoted(tally.tally)} SET {zeroed} WHERE {tally._own_rows}")  # noqa: S608
        cursor.execute(
            f"INSERT INTO {_quoted(tally.tally)} ({tally._key_columns}, {columns}) {tally._counted()} "
            f"ON CONFLICT ({tally._key_columns}) DO UPDATE SET {replaced}"
        )


@dataclass(frozen=True)
class TallyAudit:
    """One tally's check: the groups that differed (at most ``tally_drift``'s limit), and, when it was
    repaired, the groups that still differ after the repair."""

    tally: Tally
    drifted: list[dict[str, Any]]
    repaired: bool = False
    left: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """Whether the tally matches its rows now (from the start, or after its repair)."""
        return not self.drifted or (self.repaired and not self.left)


def tallies_audit(*, repair: bool) -> list[TallyAudit]:
    """Every registered tally compared with its rows (``tally_drift``), and with ``repair`` each one
    that differs set right (``tally_repair``, its source's writers held off meanwhile) and checked
    again. ``manage.py tallies_check`` and the nightly ``core.tallies_check`` task report it."""
    audits = []
    for tally in registered_tallies():
        drifted = tally_drift(tally)
        if drifted and repair:
            tally_repair(tally)
            audits.append(TallyAudit(tally, drifted, repaired=True, left=tally_drift(tally)))
        else:
            audits.append(TallyAudit(tally, drifted))
    return audits


def tallies_nightly_check() -> int:
    """``tallies_audit`` as Celery beat runs it nightly: each tally that differs from its rows is logged
    (an error, with a sample of its groups) and counted in ``adiuva_tally_drift_total``, and repaired
    when ``TALLIES_AUTO_REPAIR`` is on (off by default: a repair holds the source table's writers for
    its length). Returns how many tallies still differ."""
    audits = tallies_audit(repair=settings.TALLIES_AUTO_REPAIR)
    for audit in audits:
        if not audit.drifted:
            continue
        metrics.tally_drift_found(source=audit.tally.source)
        logger.error(
            "tally %s differs from %s in %d group(s)%s",
            audit.tally.tally,
            audit.tally.source,
            len(audit.drifted),
            "; repaired" if audit.exact else "",
            extra={"tally": audit.tally.tally, "source": audit.tally.source, "sample": audit.drifted[:3]},
        )
    return sum(not audit.exact for audit in audits)
