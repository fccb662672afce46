"""The reference client's store runs every tool-call action with the seed's filters (no server)."""

from __future__ import annotations

import pytest

from apps.devices.client.store import LocalStore, ToolError


@pytest.fixture
def store(tmp_path):
    s = LocalStore(str(tmp_path / "device.sqlite3"))
    yield s
    s.close()


def insert(store, table, **data):
    return store.execute({"action": "insert", "table": table, "data": data})["row"]


def titles(result):
    return [r.get("title") or r.get("name") for r in result["rows"]]


def test_insert_adds_uuid_timestamps_defaults_and_json(store):
    row = insert(store, "tasks", title="A", assignee=["ann"], isAiSuggested=True)
    assert len(row["id"]) == 36
    assert row["createdAt"] > 1_600_000_000_000
    assert (row["status"], row["priority"], row["isAiSuggested"], row["isApproved"]) == ("todo", "medium", 1, 1)
    assert row["assignee"] == '["ann"]'
    note = insert(store, "notes", title="N", content="# hi")
    assert note["updatedAt"] == note["createdAt"]


def test_select_filters_of_the_seed(store):
    p1 = insert(store, "projects", name="P1", clientId="c1")
    insert(store, "projects", name="Old", clientId="c1", status="archived")
    insert(store, "projects", name="P2", clientId="c2")
    insert(store, "tasks", title="Write report", projectId=p1["id"], status="todo", priority="low", dueDate=100)
    insert(store, "tasks", title="Call bank", projectId=p1["id"], status="done", priority="high", dueDate=200)
    insert(store, "tasks", title="Other", status="todo", priority="medium", dueDate=300)
    t = insert(store, "tasks", title="Report draft", status="in_progress", priority="high", dueDate=150)
    insert(store, "taskComments", taskId=t["id"], author="me", content="ok")

    def select(table, **filters):
        return store.execute({"action": "select", "table": table, "filters": filters})

    assert sorted(titles(select("tasks", projectId=p1["id"]))) == ["Call bank", "Write report"]
    assert titles(select("tasks", status="done")) == ["Call bank"]
    assert sorted(titles(select("tasks", search="report"))) == ["Report draft", "Write report"]
    assert titles(select("tasks", orderBy="dueDate")) == ["Write report", "Report draft", "Call bank", "Other"]
    assert sorted(titles(select("tasks", orderBy="priority"))[:2]) == ["Call bank", "Report draft"]
    assert titles(select("tasks", orderBy="-dueDate"))[0] == "Other"
    assert sorted(titles(select("tasks", dueDateFrom=120, dueDateTo=250))) == ["Call bank", "Report draft"]
    assert [r["content"] for r in select("taskComments", taskId=t["id"])["rows"]] == ["ok"]
    assert sorted(titles(select("projects", clientId="c1"))) == ["P1"]
    assert sorted(titles(select("projects", clientId="c1", includeArchived=True))) == ["Old", "P1"]
    assert len(select("tasks", projectId=None, status=None)["rows"]) == 4  # None filters are ignored
    assert len(store.execute({"action": "select", "table": "tasks", "limit": 2})["rows"]) == 2


def test_get_update_delete(store):
    row = insert(store, "notes", title="N", content="a")
    updated = store.execute(
        {"action": "update", "table": "notes", "data": {"id": row["id"], "updates": {"content": "b"}}}
    )
    assert updated["row"]["content"] == "b"
    assert updated["row"]["updatedAt"] >= row["updatedAt"]
    assert store.execute({"action": "delete", "table": "notes", "data": {"id": row["id"]}}) == {"deleted": True}
    assert store.execute({"action": "get", "table": "notes", "data": {"id": row["id"]}}) == {"row": None}


def test_vectors(store):
    store.execute({"action": "vector_upsert", "data": {"id": "a", "content": "x", "projectId": "p"}, "vector": [1, 0]})
    store.execute({"action": "vector_upsert", "data": {"id": "b", "content": "y", "projectId": "q"}, "vector": [0, 1]})
    found = store.execute({"action": "vector_search", "vector": [0.2, 1], "limit": 2})["results"]
    assert [r["id"] for r in found] == ["b", "a"]
    scoped = store.execute({"action": "vector_search", "vector": [0.2, 1], "filters": {"projectId": "p"}})
    assert [r["id"] for r in scoped["results"]] == ["a"]


@pytest.mark.parametrize(
    "call",
    [
        {"action": "select", "table": "secrets"},
        {"action": "explode", "table": "tasks"},
        {"action": "insert", "table": "tasks", "data": {"nope": 1}},
        {"action": "select", "table": "tasks", "filters": {"bogus": 1}},
        {"action": "select", "table": "tasks", "filters": {"orderBy": "1; DROP TABLE tasks"}},
        {"action": "update", "table": "tasks", "data": {"id": "missing", "updates": {"title": "x"}}},
    ],
)
def test_bad_calls_raise_tool_errors(store, call):
    with pytest.raises(ToolError):
        store.execute(call)


def test_an_insert_of_an_id_the_table_has_returns_the_existing_row_unchanged(store):
    # given a row inserted under an id the server chose
    first = insert(store, "tasks", id="4f7c2a51-0000-4000-8000-000000000001", title="Send invoice", isAiSuggested=1)

    # when the same insert arrives again (its answer was lost), even with other values
    again = insert(store, "tasks", id="4f7c2a51-0000-4000-8000-000000000001", title="Changed", isAiSuggested=0)

    # then it is done already: one row, as first written
    assert again == first
    assert titles(store.execute({"action": "select", "table": "tasks"})) == ["Send invoice"]


def test_scan_folders_filters_extensions_and_reports_what_it_cannot_send(tmp_path):
    from apps.devices.client.agent_files import pieces, scan_folders

    # given
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("alpha")
    (tmp_path / "sub" / "b.TXT").write_text("beta")
    (tmp_path / "c.png").write_bytes(b"\x89PNG")
    (tmp_path / "big.md").write_text("x" * 100)

    # when
    scan = scan_folders([str(tmp_path), str(tmp_path / "missing")], ["md", ".txt"], file_max_bytes=50)

    # then
    assert [(f["name"], f["content"]) for f in scan.files] == [("a.md", "alpha"), ("b.TXT", "beta")]
    assert scan.files[0]["metadata"]["size"] == 5
    assert [e.split(": ", 1)[1] for e in scan.errors] == ["100 bytes, too large to send", "not a folder on this device"]
    # and pieces respect the byte and count bounds, in order
    assert [[f["name"] for f in p] for p in pieces(scan.files, max_bytes=10_000, max_files=1)] == [["a.md"], ["b.TXT"]]
    assert len(list(pieces(scan.files, max_bytes=10_000, max_files=10))) == 1


async def test_a_run_sends_its_first_piece_before_it_reads_its_last_file(tmp_path):
    from apps.devices.client import DeviceClient
    from apps.devices.client.agent_files import FIRST_PIECE_FILES

    # given a folder of more files than the first piece holds
    count = FIRST_PIECE_FILES * 4
    for i in range(count):
        (tmp_path / f"f{i:03d}.md").write_text(f"file {i}")
    last = tmp_path / f"f{count - 1:03d}.md"
    sent: list[dict] = []

    class Device(DeviceClient):
        async def send(self, frame: dict) -> None:
            sent.append(frame)
            if len(sent) == 1:  # the first piece is out: the last file goes away before it is read
                last.unlink()

    client = Device("ws://127.0.0.1:9", None)  # never connected: run_agent only reads and sends

    # when the device answers a run
    await client.run_agent({"run_id": "r1", "config": {"paths": [str(tmp_path)], "file_extensions": ["md"]}})

    # then the first piece left after its first files, the next ones grew, and the file that was gone
    # by the time it was read is named, not sent
    data = [frame for frame in sent if frame["type"] == "agent_data"]
    assert [len(frame["files"]) for frame in data] == [FIRST_PIECE_FILES, 2 * FIRST_PIECE_FILES, FIRST_PIECE_FILES - 1]
    assert [f["name"] for frame in data for f in frame["files"]] == [f"f{i:03d}.md" for i in range(count - 1)]
    assert sent[-1] == {
        "type": "agent_complete",
        "run_id": "r1",
        "files_read": count - 1,
        "errors": [f"{last}: No such file or directory"],
    }
