"""The project sub-agent's tools (6)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, tool

from ..device_calls import execute_on_client
from .common import delete_row, device_tool, format_date, invalid_choice, listing, result_row, result_rows
from .updates import changed_fields, update_row

PROJECT_STATUSES = ("active", "archived")


def _project_line(r: dict[str, Any]) -> str:
    client = f", client {r['clientId']}" if r.get("clientId") else ""
    return f"- {r.get('name', '(unnamed)')} (id: {r.get('id')}, status: {r.get('status')}{client})"


@tool("list_projects")
@device_tool
async def list_projects(client_id: str = "", include_archived: bool = False) -> str:
    """List projects, optionally of one client; archived ones only when include_archived is true."""
    result = await execute_on_client(
        action="select", table="projects", filters={"clientId": client_id, "includeArchived": include_archived or None}
    )
    return listing("project", result_rows(result), _project_line)


@tool("list_all_projects")
@device_tool
async def list_all_projects() -> str:
    """List every project of every client, archived ones included."""
    result = await execute_on_client(action="select", table="projects")
    return listing("project", result_rows(result), _project_line)


@tool("get_project")
@device_tool
async def get_project(project_id: str) -> str:
    """Get one project by id with all its fields."""
    result = await execute_on_client(action="get", table="projects", data={"id": project_id})
    row = result_row(result)
    if row is None:
        return f"No project with id {project_id} was found."
    summary = f"\nAI summary: {row['aiSummary']}" if row.get("aiSummary") else ""
    facts = f"id: {row.get('id')}, status: {row.get('status')}, client: {row.get('clientId')}"
    return f"Project '{row.get('name')}' ({facts}, created {format_date(row.get('createdAt'))}){summary}"


@tool("create_project")
@device_tool
async def create_project(name: str, client_id: str = "") -> str:
    """Create an active project, optionally for a client."""
    data = {"name": name, "status": "active", **({"clientId": client_id} if client_id else {})}
    result = await execute_on_client(action="insert", table="projects", data=data)
    row = result_row(result) or {}
    return f"Project created: '{row.get('name', name)}' (id: {row.get('id')})."


@tool("update_project")
@device_tool
async def update_project(
    project_id: str, name: str = "", status: str = "", client_id: str = "", ai_summary: str = ""
) -> str:
    """Update a project by id (status active or archived); empty fields stay unchanged. Archive rather than delete."""
    if status and status not in PROJECT_STATUSES:
        return invalid_choice("status", status, PROJECT_STATUSES)
    updates = changed_fields({"name": name, "status": status, "clientId": client_id, "aiSummary": ai_summary})
    return await update_row(
        table="projects",
        noun="project",
        row_id=project_id,
        updates=updates,
        summary=lambda row: (
            f"Project updated: '{row.get('name')}' (id: {row.get('id', project_id)}); changed {', '.join(updates)}."
        ),
    )


@tool("delete_project")
@device_tool
async def delete_project(project_id: str) -> str:
    """Permanently delete a project; only when the user explicitly confirmed deletion (prefer archiving)."""
    done = f"Project {project_id} permanently deleted."
    return await delete_row(table="projects", noun="project", row_id=project_id, done=done)


PROJECT_TOOLS: list[BaseTool] = [
    list_projects,
    list_all_projects,
    get_project,
    create_project,
    update_project,
    delete_project,
]
