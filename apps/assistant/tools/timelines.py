"""The timeline sub-agent's tools (4): project milestones."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, tool

from ..device_calls import execute_on_client
from .common import delete_row, device_tool, format_date, listing, result_row, result_rows
from .updates import changed_fields, update_row


def _timeline_line(r: dict[str, Any]) -> str:
    flags = " [AI-suggested, not approved]" if r.get("isAiSuggested") and not r.get("isApproved") else ""
    facts = f"id: {r.get('id')}, project {r.get('projectId')}"
    return f"- {r.get('title', '(untitled)')} on {format_date(r.get('date'))} ({facts}){flags}"


@tool("list_timelines")
@device_tool
async def list_timelines(project_id: str = "") -> str:
    """List timeline milestones, of one project or of all projects."""
    result = await execute_on_client(action="select", table="timelines", filters={"projectId": project_id})
    return listing("timeline", result_rows(result), _timeline_line)


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
    row = result_row(result) or {}
    when = format_date(row.get("date", date))
    return f"Timeline created: '{row.get('title', title)}' on {when} (id: {row.get('id')})."


@tool("update_timeline")
@device_tool
async def update_timeline(
    timeline_id: str, title: str = "", date: int = -1, is_ai_suggested: int = -1, is_approved: int = -1
) -> str:
    """Update a milestone by id; empty title and -1 numbers stay unchanged."""
    updates = changed_fields(
        {"title": title}, {"date": date, "isAiSuggested": is_ai_suggested, "isApproved": is_approved}
    )
    return await update_row(
        table="timelines",
        noun="timeline",
        row_id=timeline_id,
        updates=updates,
        summary=lambda row: (
            f"Timeline updated: '{row.get('title')}' on {format_date(row.get('date'))} "
            f"(id: {row.get('id', timeline_id)})."
        ),
    )


@tool("delete_timeline")
@device_tool
async def delete_timeline(timeline_id: str) -> str:
    """Delete a milestone by id."""
    done = f"Timeline {timeline_id} deleted."
    return await delete_row(table="timelines", noun="timeline", row_id=timeline_id, done=done)


TIMELINE_TOOLS: list[BaseTool] = [list_timelines, create_timeline, update_timeline, delete_timeline]
