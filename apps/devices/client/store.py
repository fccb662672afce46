"""The reference client's local database: SPEC's client tables in SQLite, plus a small vector store.

It executes tool calls the way the Electron app does with Drizzle and LanceDB: camelCase
columns, ids (uuid4) and millisecond timestamps added on insert, the seed's select filters.
Plain sqlite3, no Django: it is the device side.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import uuid
from typing import Any

TABLES: dict[str, list[str]] = {
    "tasks": [
        "id",
        "projectId",
        "title",
        "description",
        "status",
        "priority",
        "assignee",
        "dueDate",
        "isAiSuggested",
        "isApproved",
        "createdAt",
    ],
    "projects": ["id", "clientId", "name", "status", "aiSummary", "createdAt"],
    "timelines": ["id", "projectId", "title", "date", "isAiSuggested", "isApproved", "createdAt"],
    "notes": ["id", "projectId", "title", "content", "createdAt", "updatedAt"],
    "taskComments": ["id", "taskId", "author", "content", "createdAt"],
    "clients": ["id", "parentId", "name", "industry", "createdAt"],
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "tasks": {"status": "todo", "priority": "medium", "isAiSuggested": 0, "isApproved": 1},
    "projects": {"status": "active"},
    "timelines": {"isAiSuggested": 0, "isApproved": 1},
}
# Columns the seed's ``search`` filter looks in, per table.
SEARCH_COLUMNS = {
    "tasks": ["title", "description"],
    "projects": ["name", "aiSummary"],
    "timelines": ["title"],
    "notes": ["title", "content"],
    "taskComments": ["content"],
    "clients": ["name", "industry"],
}
DATE_COLUMN = {"tasks": "dueDate", "timelines": "date", "notes": "createdAt"}
MAX_ROWS = 500


class ToolError(Exception):
    """A tool call the store cannot run; its text goes back in ``tool_result.error``."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _q(column: str) -> str:
    return f'"{column}"'


# The statement of a ``get`` per table, made once: the most frequent call's text is not rebuilt each
# time (sqlite3 keeps the prepared statement per text in its own cache).
_GET_SQL = {table: f"SELECT * FROM {_q(table)} WHERE id = ?" for table in TABLES}  # noqa: S608


class LocalStore:
    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL") if path != ":memory:" else None
        for table, columns in TABLES.items():
            cols = ", ".join(f"{_q(c)} {'TEXT PRIMARY KEY' if c == 'id' else ''}" for c in columns)
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {_q(table)} ({cols})")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (id TEXT PRIMARY KEY, content TEXT, metadata TEXT, vector TEXT)"
        )

    def close(self) -> None:
        self.db.close()

    # --- dispatch -------------------------------------------------------------------------

    def execute(self, call: dict[str, Any]) -> dict[str, Any]:
        """Run one ``tool_call`` frame; return the ``tool_result`` fields (without type/id)."""
        action = call.get("action")
        method = getattr(self, f"_do_{action}", None)
        if method is None:
            raise ToolError(f"unknown action {action!r}")
        with self._lock:
            return method(call)

    def _table(self, call: dict[str, Any]) -> str:
        table = call.get("table")
        if table not in TABLES:
            raise ToolError(f"unknown table {table!r}")
        return table

    def _row(self, row: sqlite3.Row | None) -> dict[str, Any] | None:
        return dict(row) if row is not None else None

    # --- CRUD -----------------------------------------------------------------------------

    def _do_select(self, call: dict[str, Any]) -> dict[str, Any]:
        table = self._table(call)
        filters = {k: v for k, v in (call.get("filters") or {}).items() if v is not None}
        where: list[str] = []
        params: list[Any] = []
        order = "createdAt DESC"
        for key, value in filters.items():
            if key == "search":
                cols = SEARCH_COLUMNS[table]
                where.append("(" + " OR ".join(f"{_q(c)} LIKE ?" for c in cols) + ")")
                params += [f"%{value}%"] * len(cols)
            elif key == "orderBy":
                order = self._order(table, str(value))
            elif key in ("dueDateFrom", "dateFrom"):
                where.append(f"{_q(DATE_COLUMN.get(table, 'createdAt'))} >= ?")
                params.append(int(value))
            elif key in ("dueDateTo", "dateTo"):
                where.append(f"{_q(DATE_COLUMN.get(table, 'createdAt'))} <= ?")
                params.append(int(value))
            elif key == "includeArchived":
                continue
            elif key in TABLES[table]:
                where.append(f"{_q(key)} = ?")
                params.append(value)
            else:
                raise ToolError(f"unknown filter {key!r} for {table}")
        if table == "projects" and not filters.get("includeArchived") and "status" not in filters:
            where.append("\"status\" != 'archived'")
        limit = min(int(call.get("limit") or MAX_ROWS), MAX_ROWS)
        sql = f"SELECT * FROM {_q(table)}"  # noqa: S608  (table and columns come from TABLES)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order} LIMIT {limit}"
        return {"rows": [dict(r) for r in self.db.execute(sql, params)]}

    def _order(self, table: str, value: str) -> str:
        column, direction = value, "ASC"
        if value.startswith("-"):
            column, direction = value[1:], "DESC"
        elif ":" in value or " " in value:
            column, _, direction = value.replace(":", " ").partition(" ")
            direction = "DESC" if direction.strip().lower() == "desc" else "ASC"
        if column == "priority" and table == "tasks":
            rank = "CASE \"priority\" WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END"
            return f"{rank} {direction}"
        if column not in TABLES[table]:
            raise ToolError(f"cannot order {table} by {column!r}")
        return f"{_q(column)} {direction}"

    def _do_get(self, call: dict[str, Any]) -> dict[str, Any]:
        table = self._table(call)
        row_id = (call.get("data") or {}).get("id")
        row = self.db.execute(_GET_SQL[table], (row_id,)).fetchone()
        return {"row": self._row(row)}

    def _clean(self, table: str, data: dict[str, Any]) -> dict[str, Any]:
        unknown = set(data) - set(TABLES[table])
        if unknown:
            raise ToolError(f"unknown column(s) for {table}: {', '.join(sorted(unknown))}")
        clean = {}
        for key, value in data.items():
            if isinstance(value, bool):
                value = int(value)
            elif isinstance(value, list | dict):
                value = json.dumps(value)
            clean[key] = value
        return clean

    def _do_insert(self, call: dict[str, Any]) -> dict[str, Any]:
        """Insert a row; the caller may choose its id. An insert of an id the table already has is
        done already (a redelivery whose first answer was lost): the existing row is returned."""
        table = self._table(call)
        now = _now_ms()
        values = {**DEFAULTS.get(table, {}), **self._clean(table, call.get("data") or {})}
        values["id"] = str(values.get("id") or uuid.uuid4())
        existing = self._do_get({"table": table, "data": {"id": values["id"]}})
        if existing["row"] is not None:
            return existing
        values["createdAt"] = now
        if "updatedAt" in TABLES[table]:
            values["updatedAt"] = now
        cols = ", ".join(_q(c) for c in values)
        marks = ", ".join("?" for _ in values)
        self.db.execute(f"INSERT INTO {_q(table)} ({cols}) VALUES ({marks})", list(values.values()))  # noqa: S608
        return self._do_get({"table": table, "data": {"id": values["id"]}})

    def _do_update(self, call: dict[str, Any]) -> dict[str, Any]:
        table = self._table(call)
        data = dict(call.get("data") or {})
        row_id = data.pop("id", None)
        updates = data.pop("updates", data)
        updates = self._clean(table, {k: v for k, v in updates.items() if k not in ("id", "createdAt")})
        if "updatedAt" in TABLES[table]:
            updates["updatedAt"] = _now_ms()
        if updates:
            assignments = ", ".join(f"{_q(c)} = ?" for c in updates)
            self.db.execute(
                f"UPDATE {_q(table)} SET {assignments} WHERE id = ?",  # noqa: S608
                [*updates.values(), row_id],
            )
        row = self._do_get({"table": table, "data": {"id": row_id}})["row"]
        if row is None:
            raise ToolError(f"{table} {row_id} not found")
        return {"row": row}

    def _do_delete(self, call: dict[str, Any]) -> dict[str, Any]:
        table = self._table(call)
        row_id = (call.get("data") or {}).get("id")
        cursor = self.db.execute(f"DELETE FROM {_q(table)} WHERE id = ?", (row_id,))  # noqa: S608
        return {"deleted": cursor.rowcount > 0}

    # --- vectors (LanceDB in the Electron app) --------------------------------------------

    def _do_vector_upsert(self, call: dict[str, Any]) -> dict[str, Any]:
        data = dict(call.get("data") or {})
        vector = call.get("vector")
        if not vector or "id" not in data:
            raise ToolError("vector_upsert needs data.id and a vector")
        item_id = str(data.pop("id"))
        content = data.pop("content", "")
        self.db.execute(
            "INSERT OR REPLACE INTO vectors (id, content, metadata, vector) VALUES (?, ?, ?, ?)",
            (item_id, content, json.dumps(data), json.dumps(vector)),
        )
        return {"ok": True}

    def _do_vector_search(self, call: dict[str, Any]) -> dict[str, Any]:
        query = call.get("vector")
        if not query:
            raise ToolError("vector_search needs a vector")
        filters = {k: v for k, v in (call.get("filters") or {}).items() if v is not None}
        qnorm = math.sqrt(sum(x * x for x in query)) or 1.0
        scored = []
        for row in self.db.execute("SELECT id, content, metadata, vector FROM vectors"):
            metadata = json.loads(row["metadata"])
            if any(metadata.get(k) != v for k, v in filters.items()):
                continue
            vector = json.loads(row["vector"])
            if len(vector) != len(query):
                continue
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            score = sum(a * b for a, b in zip(query, vector, strict=True)) / (qnorm * norm)
            scored.append({"id": row["id"], "content": row["content"], "score": score, **metadata})
        scored.sort(key=lambda r: r["score"], reverse=True)
        return {"results": scored[: int(call.get("limit") or 5)]}
