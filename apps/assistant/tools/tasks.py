"""The task sub-agent's tools (8): tasks and their comments."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from langchain_core.tools import BaseTool, tool

from ..device_calls import execute_on_client
from .common import delete_row, device_tool, format_date, invalid_choice, listing, result_row, result_rows
from .updates import changed_fields, update_row

TASK_STATUSES = ("todo", "in_progress", "done")
PRIORITIES = ("high", "medium", "low")


def _task_line(r: dict[str, Any]) -> str:
    due = f", due {format_date(r['dueDate'])}" if r.get("dueDate") else ""
    project = f", project {r['projectId']}" if r.get("projectId") else ""
    facts = f"id: {r.get('id')}, status: {r.get('status')}, priority: {r.get('priority')}{due}{project}"
    return f"- {r.get('title', '(untitled)')} ({facts})"


@tool("list_tasks")
@device_tool
async def list_tasks(project_id: str = "", status: str = "", search: str = "", order_by: str = "") -> str:
    """List the user's tasks, optionally filtered by project id, status (todo, in_progress, done) or a search
    text in the title, and ordered by a column (e.g. dueDate, priority, createdAt)."""
    if status and status not in TASK_STATUSES:
        return invalid_choice("status", status, TASK_STATUSES)
    result = await execute_on_client(
        action="select",
        table="tasks",
        filters={"projectId": project_id, "status": status, "search": search, "orderBy": order_by},
    )
    return listing("task", result_rows(result), _task_line)


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
        return invalid_choice("status", status, TASK_STATUSES)
    if priority not in PRIORITIES:
        return invalid_choice("priority", priority, PRIORITIES)
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
    row = result_row(result) or {}
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
        return invalid_choice("status", status, TASK_STATUSES)
    if priority and priority not in PRIORITIES:
        return invalid_choice("priority", priority, PRIORITIES)
    updates = changed_fields(
        {
            "title": title,
            "description": description,
            "status": status,
            "priority": priority,
            "assignee": assignees,
            "projectId": project_id,
        },
        {"dueDate": due_date, "isAiSuggested": is_ai_suggested, "isApproved": is_approved},
    )
    return await update_row(
        table="tasks",
        noun="task",
        row_id=task_id,
        updates=updates,
        summary=lambda row: (
            f"Task updated: '{row.get('title')}' (id: {row.get('id', task_id)}); changed {', '.join(updates)}."
        ),
    )


@tool("delete_task")
@device_tool
async def delete_task(task_id: str) -> str:
    """Delete a task by id (only when the user asked for it)."""
    return await delete_row(table="tasks", noun="task", row_id=task_id, done=f"Task {task_id} deleted.")


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
    rows = result_rows(result)
    return "No tasks are due today." if not rows else listing("task due today", rows, _task_line)


@tool("list_task_comments")
@device_tool
async def list_task_comments(task_id: str) -> str:
    """List the comments of a task."""
    result = await execute_on_client(action="select", table="taskComments", filters={"taskId": task_id})
    rows = result_rows(result)
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
    row = result_row(result) or {}
    return f"Comment added to task {task_id} (id: {row.get('id')})."


@tool("delete_task_comment")
@device_tool
async def delete_task_comment(comment_id: str) -> str:
    """Delete a task comment by id."""
    done = f"Comment {comment_id} deleted."
    return await delete_row(table="taskComments", noun="comment", row_id=comment_id, done=done)


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
