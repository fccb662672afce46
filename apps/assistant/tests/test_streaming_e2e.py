"""End to end over the real device socket: reference client ⇄ server ⇄ scripted model.

Each test scripts the model's turns: the supervisor dispatches a sub-agent with the ``task``
tool, the sub-agent calls its device tool, which becomes a ``tool_call`` the reference client
runs on its SQLite; the scripted replies quote what they were sent, so the assertions prove
the real rows travelled through the model and back to the client.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from asgiref.sync import sync_to_async

from apps.assistant.testing.scripted_openai import Reply, ToolCall, text, tool_call

from .conftest import answer_with_tags, floating, home, ids_in, relay_tool_result, streamed_text, types

pytestmark = pytest.mark.django_db(transaction=True)


def dispatch(subagent: str, description: str = "do it and report ids"):
    return tool_call("task", {"description": description, "subagent_type": subagent})


async def test_list_my_tasks_selects_on_the_device_and_tags_the_real_ids(devices, user, llm):
    # given two tasks in the client's SQLite
    client = await devices(user)
    first = client.store.execute({"action": "insert", "table": "tasks", "data": {"title": "Buy milk"}})["row"]
    second = client.store.execute({"action": "insert", "table": "tasks", "data": {"title": "Call Anna"}})["row"]
    llm.script(
        dispatch("task", "List all the user's tasks with their ids"),
        tool_call("list_tasks", {}),
        relay_tool_result(),
        answer_with_tags("task"),
    )

    # when
    frames = await home(client, "list my tasks")

    # then the device ran a select on tasks, and the answer tags exactly those rows
    assert [(c["action"], c["table"]) for c in client.tool_calls] == [("select", "tasks")]
    assert types(frames)[0] == "stream_start"
    assert types(frames)[-1] == "stream_end"
    assert set(types(frames)[1:-1]) == {"stream_text"}
    answer = streamed_text(frames)
    tag = answer[answer.index("<task>[") + 7 : answer.index("]</task>")]
    assert sorted(tag.split(",")) == sorted([first["id"], second["id"]])
    assert frames[-1]["mutations"] == []
    # and the supervisor saw only the dispatcher and its memory tool; the sub-agent its own tools
    supervisor, subagent = llm.chat_requests()[0], llm.chat_requests()[1]
    assert sorted(supervisor.tool_names) == ["search_notes", "task", "update_core_memory"]
    assert "list_tasks" in subagent.tool_names
    assert "delete_note" not in subagent.tool_names
    assert not {"ls", "read_file", "write_file", "edit_file", "delete"} & set(subagent.tool_names)


async def test_create_task_lands_in_the_client_sqlite_and_in_stream_end_mutations(devices, user, llm):
    # given
    client = await devices(user)
    llm.script(
        dispatch("task", "Create a high priority task 'Write report'"),
        tool_call("create_task", {"title": "Write report", "priority": "high"}),
        relay_tool_result(),
        answer_with_tags("task"),
    )

    # when
    frames = await home(client, "add a high priority task to write the report")

    # then
    rows = client.store.execute({"action": "select", "table": "tasks"})["rows"]
    assert [(r["title"], r["priority"]) for r in rows] == [("Write report", "high")]
    mutations = frames[-1]["mutations"]
    # the wire contract of the earlier backend: data is what the request sent; row what the device returned
    assert mutations == [
        {
            "action": "insert",
            "table": "tasks",
            "data": {
                "title": "Write report",
                "status": "todo",
                "priority": "high",
                "assignee": "[]",
                "isAiSuggested": 0,
                "isApproved": 0,
            },
            "row": rows[0],
        }
    ]
    assert rows[0]["id"] in streamed_text(frames)


async def test_update_and_delete_are_both_listed_as_mutations(devices, user, llm):
    # given
    client = await devices(user)
    task = client.store.execute({"action": "insert", "table": "tasks", "data": {"title": "Old"}})["row"]
    llm.script(
        dispatch("task"),
        tool_call("update_task", {"task_id": task["id"], "status": "done"}),
        tool_call("delete_task", {"task_id": task["id"]}),
        relay_tool_result(),
        text("Done and removed."),
    )

    # when
    frames = await home(client, "mark it done then delete it")

    # then
    assert [(m["action"], m["data"]["id"]) for m in frames[-1]["mutations"]] == [
        ("update", task["id"]),
        ("delete", task["id"]),
    ]
    assert frames[-1]["mutations"][0]["data"] == {"id": task["id"], "updates": {"status": "done"}}
    assert frames[-1]["mutations"][0]["row"]["status"] == "done"
    assert "row" not in frames[-1]["mutations"][1]
    assert client.store.execute({"action": "select", "table": "tasks"})["rows"] == []


async def test_floating_request_announces_the_domain_of_the_first_subagent_then_streams(devices, user, llm):
    # given a note the floating chat is opened on
    client = await devices(user)
    note = client.store.execute(
        {"action": "insert", "table": "notes", "data": {"title": "Launch plan", "content": "# Steps"}}
    )["row"]
    llm.script(
        Reply(
            text="Let me look. ",
            tool_calls=[ToolCall("task", {"description": f"Read note {note['id']}", "subagent_type": "note"})],
        ),
        tool_call("get_note", {"note_id": note["id"]}),
        relay_tool_result(),
        text("The note lists the launch steps."),
    )

    # when
    frames = await floating(client, "summarise this", {"type": "note", "id": note["id"]})

    # then the domain comes first, derived from the sub-agent used, and the supervisor saw the scope
    assert types(frames)[:2] == ["floating_domain", "stream_start"]
    assert frames[0]["domain"] == "notes"
    assert types(frames)[-1] == "stream_end"
    assert "launch steps" in streamed_text(frames)
    supervisor_prompt = llm.chat_requests()[0].system_prompt
    assert note["id"] in supervisor_prompt
    assert "Launch plan" in supervisor_prompt
    assert [(c["action"], c["table"]) for c in client.tool_calls] == [("get", "notes"), ("get", "notes")]


async def test_floating_text_held_for_the_domain_leaves_as_soon_as_the_dispatch_names_it(devices, user, llm) -> None:
    # given a supervisor that writes text, then streams its dispatch in pieces and keeps its step open
    client = await devices(user)
    note = client.store.execute({"action": "insert", "table": "notes", "data": {"title": "Plan", "content": "x"}})[
        "row"
    ]
    step_open = threading.Event()
    llm.script(
        Reply(
            text="One moment. ",
            tool_calls=[ToolCall("task", {"description": f"Read note {note['id']}", "subagent_type": "note"})],
            tool_args_chunk=7,
            hold_before_finish=step_open,
        ),
        tool_call("get_note", {"note_id": note["id"]}),
        relay_tool_result(),
        text("The note lists the launch steps."),
    )
    request_id = uuid.uuid4().hex
    queue: asyncio.Queue = asyncio.Queue()
    client._streams[request_id] = queue

    # when the request runs and the model's step has not ended yet
    await client.send(
        {"type": "floating_request", "request_id": request_id, "message": "sum up", "scope": {"type": "note"}}
    )
    early: list[dict] = []
    try:
        while streamed_text(early) != "One moment. ":
            early.append(await asyncio.wait_for(queue.get(), 10))
    finally:
        step_open.set()
    rest: list[dict] = []
    while not rest or rest[-1]["type"] != "stream_end":
        rest.append(await asyncio.wait_for(queue.get(), 15))
    client._streams.pop(request_id, None)

    # then the domain and the held text left while the step was still open, and the rest followed
    assert types(early)[:2] == ["floating_domain", "stream_start"]
    assert early[0]["domain"] == "notes"
    frames = early + rest
    assert "launch steps" in streamed_text(frames)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert types(frames).count("floating_domain") == 1


async def test_floating_without_subagent_announces_the_tasks_domain_whatever_its_scope(devices, user, llm):
    # given
    client = await devices(user)
    project = client.store.execute({"action": "insert", "table": "projects", "data": {"name": "Website"}})["row"]
    llm.script(text("It is an active project."))

    # when
    frames = await floating(client, "status?", {"type": "project", "id": project["id"]})

    # then
    assert frames[0] == {
        "type": "floating_domain",
        "request_id": frames[0]["request_id"],
        "seq": 1,
        "domain": "tasks",
    }
    assert streamed_text(frames) == "It is an active project."
    # and the scoped row still reached the prompt as data
    assert "Website" in llm.chat_requests()[0].system_prompt


@pytest.mark.parametrize("scope", [{"type": "client", "id": "c-1"}, {"type": "home"}, {"type": "Dashboard"}])
async def test_floating_accepts_any_scope_type_the_client_sends(devices, user, llm, scope):
    # given
    client = await devices(user)
    llm.script(text("Here to help."))

    # when
    frames = await floating(client, "hi", scope)

    # then no device lookup was needed, and the answer streams under the tasks domain
    assert types(frames) == ["floating_domain", "stream_start", "stream_text", "stream_end"]
    assert frames[0]["domain"] == "tasks"
    assert client.tool_calls == []


async def test_floating_scope_id_missing_on_the_device_is_a_clear_error(devices, user, llm):
    # given
    client = await devices(user)

    # when
    frames = await floating(client, "hi", {"type": "task", "id": "does-not-exist"})

    # then
    assert types(frames) == ["error", "stream_end"]
    assert frames[0]["code"] == "scope_not_found"
    assert llm.chat_requests() == []


async def test_another_users_scope_id_is_not_found_and_their_device_is_never_called(devices, make_user, llm):
    # given Bob's note on Bob's device, and Alice's device
    alice, bob = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    bob_client = await devices(bob)
    bobs_note = bob_client.store.execute({"action": "insert", "table": "notes", "data": {"title": "secret"}})["row"]
    alice_client = await devices(alice)

    # when Alice opens a floating chat on Bob's note id
    frames = await floating(alice_client, "show it", {"type": "note", "id": bobs_note["id"]})

    # then
    assert types(frames) == ["error", "stream_end"]
    assert frames[0]["code"] == "scope_not_found"
    assert bob_client.tool_calls == []


async def test_home_tools_reach_only_the_requesting_users_device(devices, make_user, llm):
    # given two users with tasks on their own devices
    alice, bob = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    bob_client = await devices(bob)
    bob_client.store.execute({"action": "insert", "table": "tasks", "data": {"title": "Bob's task"}})
    alice_client = await devices(alice)
    mine = alice_client.store.execute({"action": "insert", "table": "tasks", "data": {"title": "Alice's"}})["row"]
    llm.script(dispatch("task"), tool_call("list_tasks", {}), relay_tool_result(), answer_with_tags("task"))

    # when
    frames = await home(alice_client, "list my tasks")

    # then
    assert bob_client.tool_calls == []
    assert ids_in(llm.chat_requests()[-1].last_tool_text) == [mine["id"]]
    assert "Bob's task" not in streamed_text(frames)


async def test_unconfigured_llm_answers_llm_not_configured(devices, user, settings):
    # given no endpoint configured
    settings.OPENAI_API_KEY = ""
    client = await devices(user)

    # when
    frames = await home(client, "hello")

    # then
    assert types(frames) == ["error", "stream_end"]
    assert frames[0]["code"] == "llm_not_configured"
    assert "OPENAI_API_KEY" in frames[0]["message"]


@pytest.mark.parametrize(
    ("subagent", "tool", "argument"),
    [
        ("note", "delete_note", "note_id"),
        ("project", "delete_project", "project_id"),
        ("timeline", "delete_timeline", "timeline_id"),
        ("task", "delete_task", "task_id"),
        ("task", "delete_task_comment", "comment_id"),
    ],
)
async def test_a_delete_the_device_did_not_confirm_is_neither_reported_nor_listed(
    devices, user, llm, subagent, tool, argument
):
    # given a device holding no row with that id (it answers deleted: false)
    client = await devices(user)
    llm.script(
        dispatch(subagent),
        tool_call(tool, {argument: "no-such-id"}),
        relay_tool_result("TOOL SAID: "),
        text("Nothing to delete."),
    )

    # when
    frames = await home(client, "delete it")

    # then the device was asked, the model was told nothing was deleted, and no mutation is listed
    assert [(c["action"], c["data"]) for c in client.tool_calls] == [("delete", {"id": "no-such-id"})]
    tool_text = llm.chat_requests()[2].last_tool_text
    assert "nothing was deleted" in tool_text
    assert frames[-1]["mutations"] == []


async def _indexed_note(client, title: str, content: str) -> dict:
    from apps.assistant.testing.scripted_openai import embed_text

    note = client.store.execute({"action": "insert", "table": "notes", "data": {"title": title, "content": content}})
    client.store.execute(
        {
            "action": "vector_upsert",
            "data": {"id": note["row"]["id"], "content": content},
            "vector": embed_text(content),
        }
    )
    return note["row"]


async def test_home_search_notes_embeds_the_query_and_sends_vector_search_to_the_device(devices, user, llm):
    # given two indexed notes on the device
    client = await devices(user)
    deploy = await _indexed_note(client, "Deploy", "deployment checklist for the release server")
    await _indexed_note(client, "Recipes", "pasta with tomato and basil")
    client.tool_calls.clear()
    llm.script(tool_call("search_notes", {"query": "deployment checklist", "limit": 1}), relay_tool_result())
    # (the supervisor calls it itself: Home has the tool, no sub-agent needed)

    # when
    frames = await home(client, "find my notes about deployment")

    # then the server embedded the query and the device searched with that vector and limit
    from apps.assistant.testing.scripted_openai import embed_text

    (search,) = [c for c in client.tool_calls if c["action"] == "vector_search"]
    assert search["limit"] == 1
    assert search["vector"] == pytest.approx(embed_text("deployment checklist"))
    # and the model read the best match, summarised with its id
    answer = streamed_text(frames)
    assert deploy["id"] in answer
    assert "deployment checklist" in answer
    assert "pasta" not in answer
    assert frames[-1]["mutations"] == []
