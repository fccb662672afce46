"""The sub-agents' 23 tools (seed names and parameters) and the supervisors' ``update_core_memory``.

Every tool runs one or more tool calls on the user's device through ``execute_on_client`` and
returns a readable summary of the real rows, ids included; a device failure comes back as a
sentence the model can pass on. Data keys sent to the device are the client's camelCase columns.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from langchain_core.tools import BaseTool, tool

from apps.core.errors import ApplicationError
from apps.memory.services import core_memory_set

from .device_calls import DeviceUnavailable, current_request, execute_on_client
from .embeddings import text_embed

logger = logging.getLogger(__name__)

TASK_STATUSES = ("todo", "in_progress", "done")
PRIORITIES = ("high", "medium", "low")
PROJECT_STATUSES = ("active", "archived")


def device_tool(func: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """Turn a device failure into the sentence the model reads instead of an exception."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> str:
        try:
            return await func(*args, **kwargs)
        except DeviceUnavailable as exc:
            return exc.sentence

    return wrapper


def _date(ms: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.UTC).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):
        return "none"


def _invalid(name: str, value: str, allowed: tuple[str, ...]) -> str:
    return f"Invalid {name} {value!r}: use one of {', '.join(allowed)}. Nothing was changed."


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result.get("rows")
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _row(result: dict[str, Any]) -> dict[str, Any] | None:
    row = result.get("row")
    return row if isinstance(row, dict) else None


def _task_line(r: dict[str, Any]) -> str:
    due = f", due {_date(r['dueDate'])}" if r.get("dueDate") else ""
    project = f", project {r['projectId']}" if r.get("projectId") else ""
    facts = f"id: {r.get('id')}, status: {r.get('status')}, priority: {r.get('priority')}{due}{project}"
    return f"- {r.get('title', '(untitled)')} ({facts})"


def _project_line(r: dict[str, Any]) -> str:
    client = f", client {r['clientId']}" if r.get("clientId") else ""
    return f"- {r.get('name', '(unnamed)')} (id: {r.get('id')}, status: {r.get('status')}{client})"


def _timeline_line(r: dict[str, Any]) -> str:
    flags = " [AI-suggested, not approved]" if r.get("isAiSuggested") and not r.get("isApproved") else ""
    facts = f"id: {r.get('id')}, project {r.get('projectId')}"
    return f"- {r.get('title', '(untitled)')} on {_date(r.get('date'))} ({facts}){flags}"


def _note_line(r: dict[str, Any]) -> str:
    project = f", project {r['projectId']}" if r.get("projectId") else ""
    return f"- {r.get('title', '(untitled)')} (id: {r.get('id')}{project})"


def _listing(noun: str, rows: list[dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> str:
    if not rows:
        return f"No {noun}s found."
    return f"Found {len(rows)} {noun}(s):\n" + "\n".join(line(r) for r in rows)


# ── Task tools (8) ───────────────────────────────────────────────────────────


@tool("list_tasks")
@device_tool
async def list_tasks(project_id: str = "", status: str = "", search: str = "", order_by: str = "") -> str:
    """List the user's tasks, optionally filtered by project id, status (todo, in_progress, done) or a search
    text in the title, and ordered by a column (e.g. dueDate, priority, createdAt)."""
    if status and status not in TASK_STATUSES:
        return _invalid("status", status, TASK_STATUSES)
    result = await execute_on_client(
        action="select",
        table="tasks",
        filters={"projectId": project_id, "status": status, "search": search, "orderBy": order_by},
    )
    return _listing("task", _rows(result), _task_line)


@tool("create_task")
@device_tool
async def create_task(
    title: str,
    description: str = "",
    status: str = "todo",
    priority: str = "medium",
    assignees: str = "[]",
    due_date: int = 0,
    project_id: str = "",
    is_ai_suggested: int = 0,
    is_approved: int = 0,
) -> str:
    """Create a task. status: todo, in_progress or done; priority: high, medium or low; assignees: a
    JSON-encoded array of names; due_date: Unix ms (0 for none); project_id optional."""
    if status not in TASK_STATUSES:
        return _invalid("status", status, TASK_STATUSES)
    if priority not in PRIORITIES:
        return _invalid("priority", priority, PRIORITIES)
    try:
        json.loads(assignees or "[]")
    except json.JSONDecodeError:
        return "Invalid assignees: pass a JSON-encoded array of names, e.g. '[\"Alice\"]'. Nothing was changed."
    data = {
        "title": title,
        "description": description or None,
        "status": status,
        "priority": priority,
        "assignee": assignees or "[]",
        "dueDate": due_date or None,
        "projectId": project_id or None,
        "isAiSuggested": 1 if is_ai_suggested else 0,
        "isApproved": 1 if is_approved else 0,
    }
    result = await execute_on_client(
        action="insert", table="tasks", data={k: v for k, v in data.items() if v is not None}
    )
    row = _row(result) or {}
    facts = f"id: {row.get('id')}, status: {row.get('status', status)}, priority: {row.get('priority', priority)}"
    return f"Task created: '{row.get('title', title)}' ({facts})"


@tool("update_task")
@device_tool
async def update_task(
    task_id: str,
    title: str = "",
    description: str = "",
    status: str = "",
    priority: str = "",
    assignees: str = "",
    due_date: int = -1,
    project_id: str = "",
    is_ai_suggested: int = -1,
    is_approved: int = -1,
) -> str:
    """Update a task by id. Leave text fields empty and numeric fields at -1 to keep them unchanged."""
    if status and status not in TASK_STATUSES:
        return _invalid("status", status, TASK_STATUSES)
    if priority and priority not in PRIORITIES:
        return _invalid("priority", priority, PRIORITIES)
    updates: dict[str, Any] = {}
    for key, value in (
        ("title", title),
        ("description", description),
        ("status", status),
        ("priority", priority),
        ("assignee", assignees),
        ("projectId", project_id),
    ):
        if value:
            updates[key] = value
    for key, number in (("dueDate", due_date), ("isAiSuggested", is_ai_suggested), ("isApproved", is_approved)):
        if number != -1:
            updates[key] = number
    if not updates:
        return "Nothing to update: no field was given."
    result = await execute_on_client(action="update", table="tasks", data={"id": task_id, "updates": updates})
    row = _row(result)
    if row is None:
        return f"No task with id {task_id} was found; nothing was changed."
    return f"Task updated: '{row.get('title')}' (id: {row.get('id', task_id)}); changed {', '.join(updates)}."


@tool("delete_task")
@device_tool
async def delete_task(task_id: str) -> str:
    """Delete a task by id (only when the user asked for it)."""
    result = await execute_on_client(action="delete", table="tasks", data={"id": task_id})
    if result.get("deleted") is False:
        return f"No task with id {task_id} was found; nothing was deleted."
    return f"Task {task_id} deleted."


@tool("list_tasks_due_today")
@device_tool
async def list_tasks_due_today() -> str:
    """List the tasks due today (UTC day)."""
    start = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=1)
    result = await execute_on_client(
        action="select",
        table="tasks",
        filters={"dueDateFrom": int(start.timestamp() * 1000), "dueDateTo": int(end.timestamp() * 1000) - 1},
    )
    rows = _rows(result)
    return "No tasks are due today." if not rows else _listing("task due today", rows, _task_line)


@tool("list_task_comments")
@device_tool
async def list_task_comments(task_id: str) -> str:
    """List the comments of a task."""
    result = await execute_on_client(action="select", table="taskComments", filters={"taskId": task_id})
    rows = _rows(result)
    if not rows:
        return f"Task {task_id} has no comments."
    lines = [f"- {r.get('author')}: {r.get('content')} (id: {r.get('id')})" for r in rows]
    return f"Found {len(rows)} comment(s) on task {task_id}:\n" + "\n".join(lines)


@tool("add_task_comment")
@device_tool
async def add_task_comment(task_id: str, author: str, content: str) -> str:
    """Add a comment to a task."""
    result = await execute_on_client(
        action="insert", table="taskComments", data={"taskId": task_id, "author": author, "content": content}
    )
    row = _row(result) or {}
    return f"Comment added to task {task_id} (id: {row.get('id')})."


@tool("delete_task_comment")
@device_tool
async def delete_task_comment(comment_id: str) -> str:
    """Delete a task comment by id."""
    await execute_on_client(action="delete", table="taskComments", data={"id": comment_id})
    return f"Comment {comment_id} deleted."


# ── Project tools (6) ────────────────────────────────────────────────────────


@tool("list_projects")
@device_tool
async def list_projects(client_id: str = "", include_archived: bool = False) -> str:
    """List projects, optionally of one client; archived ones only when include_archived is true."""
    result = await execute_on_client(
        action="select", table="projects", filters={"clientId": client_id, "includeArchived": include_archived or None}
    )
    return _listing("project", _rows(result), _project_line)


@tool("list_all_projects")
@device_tool
async def list_all_projects() -> str:
    """List every project of every client, archived ones included."""
    result = await execute_on_client(action="select", table="projects")
    return _listing("project", _rows(result), _project_line)


@tool("get_project")
@device_tool
async def get_project(project_id: str) -> str:
    """Get one project by id with all its fields."""
    result = await execute_on_client(action="get", table="projects", data={"id": project_id})
    row = _row(result)
    if row is None:
        return f"No project with id {project_id} was found."
    summary = f"\nAI summary: {row['aiSummary']}" if row.get("aiSummary") else ""
    facts = f"id: {row.get('id')}, status: {row.get('status')}, client: {row.get('clientId')}"
    return f"Project '{row.get('name')}' ({facts}, created {_date(row.get('createdAt'))}){summary}"


@tool("create_project")
@device_tool
async def create_project(name: str, client_id: str = "") -> str:
    """Create an active project, optionally for a client."""
    data = {"name": name, "status": "active", **({"clientId": client_id} if client_id else {})}
    result = await execute_on_client(action="insert", table="projects", data=data)
    row = _row(result) or {}
    return f"Project created: '{row.get('name', name)}' (id: {row.get('id')})."


@tool("update_project")
@device_tool
async def update_project(
    project_id: str, name: str = "", status: str = "", client_id: str = "", ai_summary: str = ""
) -> str:
    """Update a project by id (status active or archived); empty fields stay unchanged. Archive rather than delete."""
    if status and status not in PROJECT_STATUSES:
        return _invalid("status", status, PROJECT_STATUSES)
    updates = {
        key: value
        for key, value in (("name", name), ("status", status), ("clientId", client_id), ("aiSummary", ai_summary))
        if value
    }
    if not updates:
        return "Nothing to update: no field was given."
    result = await execute_on_client(action="update", table="projects", data={"id": project_id, "updates": updates})
    row = _row(result)
    if row is None:
        return f"No project with id {project_id} was found; nothing was changed."
    return f"Project updated: '{row.get('name')}' (id: {row.get('id', project_id)}); changed {', '.join(updates)}."


@tool("delete_project")
@device_tool
async def delete_project(project_id: str) -> str:
    """Permanently delete a project; only when the user explicitly confirmed deletion (prefer archiving)."""
    await execute_on_client(action="delete", table="projects", data={"id": project_id})
    return f"Project {project_id} permanently deleted."


# ── Timeline tools (4) ───────────────────────────────────────────────────────


@tool("list_timelines")
@device_tool
async def list_timelines(project_id: str = "") -> str:
    """List timeline milestones, of one project or of all projects."""
    result = await execute_on_client(action="select", table="timelines", filters={"projectId": project_id})
    return _listing("timeline", _rows(result), _timeline_line)


@tool("create_timeline")
@device_tool
async def create_timeline(
    project_id: str, title: str, date: int, is_ai_suggested: int = 0, is_approved: int = 0
) -> str:
    """Create a milestone on a project (project_id required); date is Unix ms."""
    if not project_id:
        return "A timeline needs a project_id; ask the user which project. Nothing was created."
    data = {
        "projectId": project_id,
        "title": title,
        "date": date,
        "isAiSuggested": 1 if is_ai_suggested else 0,
        "isApproved": 1 if is_approved else 0,
    }
    result = await execute_on_client(action="insert", table="timelines", data=data)
    row = _row(result) or {}
    return f"Timeline created: '{row.get('title', title)}' on {_date(row.get('date', date))} (id: {row.get('id')})."


@tool("update_timeline")
@device_tool
async def update_timeline(
    timeline_id: str, title: str = "", date: int = -1, is_ai_suggested: int = -1, is_approved: int = -1
) -> str:
    """Update a milestone by id; empty title and -1 numbers stay unchanged."""
    updates: dict[str, Any] = {"title": title} if title else {}
    for key, number in (("date", date), ("isAiSuggested", is_ai_suggested), ("isApproved", is_approved)):
        if number != -1:
            updates[key] = number
    if not updates:
        return "Nothing to update: no field was given."
    result = await execute_on_client(action="update", table="timelines", data={"id": timeline_id, "updates": updates})
    row = _row(result)
    if row is None:
        return f"No timeline with id {timeline_id} was found; nothing was changed."
    return f"Timeline updated: '{row.get('title')}' on {_date(row.get('date'))} (id: {row.get('id', timeline_id)})."


@tool("delete_timeline")
@device_tool
async def delete_timeline(timeline_id: str) -> str:
    """Delete a milestone by id."""
    await execute_on_client(action="delete", table="timelines", data={"id": timeline_id})
    return f"Timeline {timeline_id} deleted."


# ── Note tools (5) ───────────────────────────────────────────────────────────


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
    return _listing("note", _rows(result), _note_line)


@tool("get_note")
@device_tool
async def get_note(note_id: str) -> str:
    """Get a note's full markdown content by id."""
    result = await execute_on_client(action="get", table="notes", data={"id": note_id})
    row = _row(result)
    if row is None:
        return f"No note with id {note_id} was found."
    return f"Note '{row.get('title')}' (id: {row.get('id')}, project {row.get('projectId')}):\n{row.get('content', '')}"


@tool("create_note")
@device_tool
async def create_note(title: str, content: str, project_id: str = "") -> str:
    """Create a markdown note, optionally linked to a project."""
    data = {"title": title, "content": content, **({"projectId": project_id} if project_id else {})}
    result = await execute_on_client(action="insert", table="notes", data=data)
    row = _row(result) or {}
    if row.get("id"):
        await _index_note(str(row["id"]), project_id or None, content)
    return f"Note created: '{row.get('title', title)}' (id: {row.get('id')})."


@tool("update_note")
@device_tool
async def update_note(note_id: str, title: str = "", content: str = "", project_id: str = "") -> str:
    """Update a note by id; empty fields stay unchanged. Read it with get_note first to keep its content."""
    updates = {
        key: value for key, value in (("title", title), ("content", content), ("projectId", project_id)) if value
    }
    if not updates:
        return "Nothing to update: no field was given."
    result = await execute_on_client(action="update", table="notes", data={"id": note_id, "updates": updates})
    row = _row(result)
    if row is None:
        return f"No note with id {note_id} was found; nothing was changed."
    if content:
        await _index_note(note_id, row.get("projectId"), content)
    return f"Note updated: '{row.get('title')}' (id: {row.get('id', note_id)}); changed {', '.join(updates)}."


@tool("delete_note")
@device_tool
async def delete_note(note_id: str) -> str:
    """Delete a note by id."""
    await execute_on_client(action="delete", table="notes", data={"id": note_id})
    return f"Note {note_id} deleted."


# ── Supervisor tool ──────────────────────────────────────────────────────────


@tool("update_core_memory")
async def update_core_memory(key: str, value: str) -> str:
    """Remember a lasting preference or fact about the user under a short key (e.g. timezone, work_hours)."""
    ctx = current_request()
    try:
        await sync_to_async(core_memory_set)(user_id=ctx.user_id, key=key, value=value)
    except ApplicationError as exc:
        return f"Could not remember that: {exc.message}"
    return f"Remembered {key}."


TASK_TOOLS: list[BaseTool] = [
    list_tasks,
    create_task,
    update_task,
    delete_task,
    list_tasks_due_today,
    list_task_comments,
    add_task_comment,
    delete_task_comment,
]
PROJECT_TOOLS: list[BaseTool] = [
    list_projects,
    list_all_projects,
    get_project,
    create_project,
    update_project,
    delete_project,
]
TIMELINE_TOOLS: list[BaseTool] = [list_timelines, create_timeline, update_timeline, delete_timeline]
NOTE_TOOLS: list[BaseTool] = [list_notes, get_note, create_note, update_note, delete_note]
SUBAGENT_TOOLS: dict[str, list[BaseTool]] = {
    "task": TASK_TOOLS,
    "project": PROJECT_TOOLS,
    "timeline": TIMELINE_TOOLS,
    "note": NOTE_TOOLS,
}
SUPERVISOR_TOOLS: list[BaseTool] = [update_core_memory]
