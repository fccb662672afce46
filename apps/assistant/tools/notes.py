"""The note sub-agent's tools (6); a note's content is also indexed in the device's vector store,
which ``search_notes`` (also a Home supervisor tool) searches by meaning."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.tools import BaseTool, tool

from apps.core.errors import ApplicationError

from ..device_calls import execute_on_client
from ..embeddings import text_embed
from .common import delete_row, device_tool, listing, result_row, result_rows
from .updates import changed_fields, update_row

logger = logging.getLogger(__name__)


def _note_line(r: dict[str, Any]) -> str:
    project = f", project {r['projectId']}" if r.get("projectId") else ""
    return f"- {r.get('title', '(untitled)')} (id: {r.get('id')}{project})"


async def _index_note(note_id: str, project_id: str | None, content: str) -> None:
    """Keep the device's vector index in step with the note; the note itself is already saved."""
    try:
        vector = await text_embed(text=content)
        await execute_on_client(
            action="vector_upsert", data={"id": note_id, "projectId": project_id, "content": content}, vector=vector
        )
    except ApplicationError as exc:
        logger.info("note %s not indexed: %s", note_id, exc.code)


@tool("list_notes")
@device_tool
async def list_notes(project_id: str = "") -> str:
    """List notes, of one project or all."""
    result = await execute_on_client(action="select", table="notes", filters={"projectId": project_id})
    return listing("note", result_rows(result), _note_line)


@tool("get_note")
@device_tool
async def get_note(note_id: str) -> str:
    """Get a note's full markdown content by id."""
    result = await execute_on_client(action="get", table="notes", data={"id": note_id})
    row = result_row(result)
    if row is None:
        return f"No note with id {note_id} was found."
    return f"Note '{row.get('title')}' (id: {row.get('id')}, project {row.get('projectId')}):\n{row.get('content', '')}"


@tool("create_note")
@device_tool
async def create_note(title: str, content: str, project_id: str = "") -> str:
    """Create a markdown note, optionally linked to a project."""
    data = {"title": title, "content": content, **({"projectId": project_id} if project_id else {})}
    result = await execute_on_client(action="insert", table="notes", data=data)
    row = result_row(result) or {}
    if row.get("id"):
        await _index_note(str(row["id"]), project_id or None, content)
    return f"Note created: '{row.get('title', title)}' (id: {row.get('id')})."


@tool("update_note")
@device_tool
async def update_note(note_id: str, title: str = "", content: str = "", project_id: str = "") -> str:
    """Update a note by id; empty fields stay unchanged. Read it with get_note first to keep its content."""
    updates = changed_fields({"title": title, "content": content, "projectId": project_id})

    async def reindex(row: dict[str, Any]) -> None:
        if content:
            await _index_note(note_id, row.get("projectId"), content)

    return await update_row(
        table="notes",
        noun="note",
        row_id=note_id,
        updates=updates,
        after=reindex,
        summary=lambda row: (
            f"Note updated: '{row.get('title')}' (id: {row.get('id', note_id)}); changed {', '.join(updates)}."
        ),
    )


@tool("delete_note")
@device_tool
async def delete_note(note_id: str) -> str:
    """Delete a note by id."""
    return await delete_row(table="notes", noun="note", row_id=note_id, done=f"Note {note_id} deleted.")


SEARCH_LIMIT_MAX = 20


def _match_line(r: dict[str, Any]) -> str:
    project = f", project {r['projectId']}" if r.get("projectId") else ""
    try:
        relevance = f", relevance {float(r.get('score', 0)):.2f}"
    except (TypeError, ValueError):
        relevance = ""
    snippet = " ".join(str(r.get("content") or "").split())[:200]
    return f"- {snippet!r} (note id: {r.get('id')}{project}{relevance})"


@tool("search_notes")
@device_tool
async def search_notes(query: str, limit: int = 5) -> str:
    """Find the user's notes by meaning (not only exact words): returns the best matching passages with
    their note ids, most relevant first. limit: 1 to 20."""
    if not query.strip():
        return "Give search_notes a query describing what to look for. Nothing was searched."
    try:
        vector = await text_embed(text=query)
    except ApplicationError as exc:
        return f"The notes could not be searched right now ({exc.code})."
    limit = max(1, min(int(limit or 5), SEARCH_LIMIT_MAX))
    result = await execute_on_client(action="vector_search", vector=vector, limit=limit)
    found = result.get("results")
    matches = [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []
    if not matches:
        return f"No notes match {query!r}."
    return f"Found {len(matches)} note passage(s) matching {query!r}:\n" + "\n".join(_match_line(r) for r in matches)


NOTE_TOOLS: list[BaseTool] = [list_notes, get_note, create_note, update_note, delete_note, search_notes]
