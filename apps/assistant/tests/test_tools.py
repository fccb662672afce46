"""The sub-agents' tools keep the seed's names and parameters (the contract the prompts rely on)."""

from __future__ import annotations

from apps.assistant.tools import HOME_SUPERVISOR_TOOLS, SUBAGENT_TOOLS, SUPERVISOR_TOOLS

SEED_TOOLS = {
    "task": {
        "list_tasks": ["project_id", "status", "search", "order_by"],
        "create_task": [
            "title",
            "description",
            "status",
            "priority",
            "assignees",
            "due_date",
            "project_id",
            "is_ai_suggested",
            "is_approved",
        ],
        "update_task": [
            "task_id",
            "title",
            "description",
            "status",
            "priority",
            "assignees",
            "due_date",
            "project_id",
            "is_ai_suggested",
            "is_approved",
        ],
        "delete_task": ["task_id"],
        "list_tasks_due_today": [],
        "list_task_comments": ["task_id"],
        "add_task_comment": ["task_id", "author", "content"],
        "delete_task_comment": ["comment_id"],
    },
    "project": {
        "list_projects": ["client_id", "include_archived"],
        "list_all_projects": [],
        "get_project": ["project_id"],
        "create_project": ["name", "client_id"],
        "update_project": ["project_id", "name", "status", "client_id", "ai_summary"],
        "delete_project": ["project_id"],
    },
    "timeline": {
        "list_timelines": ["project_id"],
        "create_timeline": ["project_id", "title", "date", "is_ai_suggested", "is_approved"],
        "update_timeline": ["timeline_id", "title", "date", "is_ai_suggested", "is_approved"],
        "delete_timeline": ["timeline_id"],
    },
    "note": {
        "list_notes": ["project_id"],
        "get_note": ["note_id"],
        "create_note": ["title", "content", "project_id"],
        "update_note": ["note_id", "title", "content", "project_id"],
        "delete_note": ["note_id"],
        "search_notes": ["query", "limit"],
    },
}


def test_each_subagent_has_the_seeds_tools_with_the_seeds_parameters():
    # when
    actual = {agent: {tool.name: list(tool.args) for tool in tools} for agent, tools in SUBAGENT_TOOLS.items()}
    # then
    assert actual == SEED_TOOLS
    assert sum(len(tools) for tools in SUBAGENT_TOOLS.values()) == 24  # the seed's 23 and search_notes


def test_supervisors_get_update_core_memory_and_home_also_search_notes():
    assert [tool.name for tool in SUPERVISOR_TOOLS] == ["update_core_memory"]
    assert [tool.name for tool in HOME_SUPERVISOR_TOOLS] == ["update_core_memory", "search_notes"]
    assert list(SUPERVISOR_TOOLS[0].args) == ["key", "value"]


def test_every_tool_documents_itself_for_the_model():
    for tools in SUBAGENT_TOOLS.values():
        for tool in tools:
            assert len(tool.description) >= 15, tool.name
