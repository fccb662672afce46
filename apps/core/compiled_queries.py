"""Hot read queries compiled to SQL once per process, then run with new values bound in.

Django compiles a queryset to SQL on every evaluation, and for the queries every authenticated
request runs (the session check, the verified-address check) the compiler costs several times the
query: about 0.6 ms of CPU against 0.07 ms for a database round trip on a 2-core box. A
``CompiledQuery`` builds its queryset once with stand-in values, keeps the SQL and the positions of
the stand-ins among its parameters, and afterwards only binds the caller's values. The queryset stays
the single description of the query; only its shape may not depend on the values (no branching on
them), which the stand-ins make sure of.

Three ways to run one: ``first()`` (a model instance, in the order ``QuerySet.first()`` uses),
``exists()``, and ``rows()`` (a ``values_list`` queryset's tuples, a window of them by limit and
offset, for list pages). ``afirst()`` and ``arows()`` are the same reads for async views, awaited on
the server's loop (``apps.core.loop_db``); ``afirst()`` as a prepared statement (``apps.core.loop_prepared``):
its values are compared with key columns, where their types are fixed and one plan (an index lookup) fits
every value.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, QuerySet

from .loop_db import loop_fetchall, loop_reads_on, loop_wrapper

M = TypeVar("M", bound=Model)


class _Compiled(NamedTuple):
    sql: str
    params: tuple[Any, ...]
    slots: dict[str, tuple[int, ...]]  # parameter name → its positions among ``params``
    # Column position → the ORM's from-database converters of that column (``rows()``, ``first()``).
    converters: dict[int, tuple[list[Any], Any]]
    # ``first()`` only: the model's columns (start, end), their attribute names, and the annotations'
    # positions, as the ORM's ModelIterable reads them.
    model_columns: tuple[int, int] = (0, 0)
    init_list: tuple[str, ...] = ()
    annotation_positions: tuple[tuple[str, int], ...] = ()


def _stand_in(field: Field) -> Any:
    """A value of the field's type that no real row uses and that appears nowhere else in the SQL."""
    if field.get_internal_type() == "UUIDField":
        return uuid.uuid4()
    return f"compiled-query-stand-in-{uuid.uuid4().hex}"


class CompiledQuery(Generic[M]):
    """``build(**values)`` compiled once; ``fields`` names the model field each value is converted by.

    Values go through the field's own conversion, as the ORM does, so a malformed value raises the
    same ``ValidationError`` the ORM would.
    """

    def __init__(self, build: Callable[..., QuerySet[M]], *, using: str = "default", **fields: Field) -> None:
        self._build = build
        self._fields = fields
        self._using = using
        self._first: _Compiled | None = None
        self._exists: _Compiled | None = None
        self._rows: _Compiled | None = None
        self._model: type[M] | None = None
        self._lock = threading.Lock()

    def _prepared(self, name: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
        field = self._fields[name]
        return field.get_db_prep_value(field.to_python(value), connection, prepared=False)

    def _compile(self, kind: str) -> _Compiled:
        stand_ins = {name: _stand_in(field) for name, field in self._fields.items()}
        queryset = self._build(**stand_ins)
        self._model = queryset.model
        if kind == "exists":
            query = queryset.query.exists(limit=True)
        elif kind == "first":
            # As ``QuerySet.first()``: the queryset's own order, else the primary key's.
            query = (queryset if queryset.ordered else queryset.order_by("pk"))[:1].query
        else:
            if queryset.query.is_sliced or queryset.query.select_for_update or queryset.query.combinator:
                raise ValueError("rows() takes a plain queryset: it adds the LIMIT and OFFSET itself")
            query = queryset.query
        compiler = query.get_compiler(using=self._using)
        sql, params = compiler.as_sql()
        converters = {}
        columns = [column[0] for column in compiler.select[: compiler.col_count]]
        if kind == "rows":
            sql += " LIMIT %s OFFSET %s"
            converters = compiler.get_converters(columns)
        model_columns: tuple[int, int] = (0, 0)
        init_list: tuple[str, ...] = ()
        if kind == "first":
            klass_info = compiler.klass_info
            assert klass_info is not None
            if klass_info.get("related_klass_infos"):
                raise ValueError("first() takes a queryset without select_related()")
            select_fields = klass_info["select_fields"]
            model_columns = (select_fields[0], select_fields[-1] + 1)
            init_list = tuple(column.target.attname for column in columns[model_columns[0] : model_columns[1]])
            converters = compiler.get_converters(columns)
        slots = {}
        for name, value in stand_ins.items():
            prepared = self._prepared(name, value, connections[self._using])
            positions = tuple(i for i, param in enumerate(params) if param == prepared)
            if not positions:
                raise ValueError(f"the compiled query does not use {name!r}")
            slots[name] = positions
        annotations = tuple(compiler.annotation_col_map.items()) if kind == "first" else ()
        return _Compiled(sql, tuple(params), slots, converters, model_columns, init_list, annotations)

    def _bound(self, compiled: _Compiled, values: dict[str, Any], connection: BaseDatabaseWrapper) -> list[Any]:
        if values.keys() != compiled.slots.keys():
            raise TypeError(f"expected the values {sorted(compiled.slots)}, got {sorted(values)}")
        params = list(compiled.params)
        for name, value in values.items():
            prepared = self._prepared(name, value, connection)
            for position in compiled.slots[name]:
                params[position] = prepared
        return params

    def _compiled(self, kind: str) -> _Compiled:
        compiled = getattr(self, f"_{kind}")
        if compiled is None:
            with self._lock:
                compiled = getattr(self, f"_{kind}") or self._compile(kind)
                setattr(self, f"_{kind}", compiled)
        return compiled

    async def _acompiled(self, kind: str) -> _Compiled:
        # Compiling may ask the database its version (once per process): in the thread, as the ORM would.
        compiled = getattr(self, f"_{kind}")
        return compiled if compiled is not None else await sync_to_async(self._compiled)(kind)

    def first(self, **values: Any) -> M | None:
        """The matching row as a model instance (only the queryset's selected fields loaded), or None;
        of several, the first in the queryset's order (the primary key's when it has none), as
        ``QuerySet.first()`` answers."""
        compiled = self._compiled("first")
        # A cursor and ``from_db``, as the ORM's ModelIterable builds an instance: ``raw()`` worked
        # out the columns' fields anew on every call, twice the CPU of the round trip itself.
        connection = connections[self._using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, self._bound(compiled, values, connection))
            return self._instance(compiled, cursor.fetchone(), connection)

    async def afirst(self, **values: Any) -> M | None:
        """``first()`` awaited: on the server's loop over its own connections (``apps.core.loop_db``),
        elsewhere in the thread."""
        if not loop_reads_on():
            return await sync_to_async(self.first)(**values)
        compiled = await self._acompiled("first")
        connection = loop_wrapper(self._using)
        params = self._bound(compiled, values, connection)
        rows = await loop_fetchall(compiled.sql, params, self._using, prepare=True)  # LIMIT 1
        return self._instance(compiled, rows[0] if rows else None, connection)

    def _instance(self, compiled: _Compiled, row: tuple[Any, ...] | None, connection: BaseDatabaseWrapper) -> M | None:
        if row is None:
            return None
        assert self._model is not None
        row = self._converted(compiled, row, connection)
        start, end = compiled.model_columns
        instance = self._model.from_db(self._using, list(compiled.init_list), row[start:end])
        for name, position in compiled.annotation_positions:
            setattr(instance, name, row[position])
        return instance

    @staticmethod
    def _converted(compiled: _Compiled, row: tuple[Any, ...], connection: BaseDatabaseWrapper) -> tuple[Any, ...]:
        if not compiled.converters:
            return row
        values_out = list(row)
        for position, (functions, expression) in compiled.converters.items():
            for function in functions:
                values_out[position] = function(values_out[position], expression, connection)
        return tuple(values_out)

    def exists(self, **values: Any) -> bool:
        compiled = self._compiled("exists")
        connection = connections[self._using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, self._bound(compiled, values, connection))
            return cursor.fetchone() is not None

    def rows(self, *, limit: int, offset: int = 0, **values: Any) -> list[tuple[Any, ...]]:
        """At most ``limit`` rows from ``offset``, in the queryset's order, as the tuples its
        ``values_list()`` yields (the same columns, converted as the ORM converts them)."""
        compiled = self._compiled("rows")
        connection = connections[self._using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, [*self._bound(compiled, values, connection), limit, offset])
            return self._rows_converted(compiled, cursor.fetchall(), connection)

    async def arows(self, *, limit: int, offset: int = 0, **values: Any) -> list[tuple[Any, ...]]:
        """``rows()`` awaited, as ``afirst()``."""
        if not loop_reads_on():
            return await sync_to_async(self.rows)(limit=limit, offset=offset, **values)
        compiled = await self._acompiled("rows")
        connection = loop_wrapper(self._using)
        params = [*self._bound(compiled, values, connection), limit, offset]
        # Not prepared: a page's best plan depends on how many rows the owner has (an index walk for
        # many, a sort of a few), which a prepared statement's generic plan cannot see.
        rows = await loop_fetchall(compiled.sql, params, self._using)
        return self._rows_converted(compiled, rows, connection)

    def _rows_converted(
        self, compiled: _Compiled, rows: list[tuple[Any, ...]], connection: BaseDatabaseWrapper
    ) -> list[tuple[Any, ...]]:
        if not compiled.converters:
            return rows
        return [self._converted(compiled, row, connection) for row in rows]
