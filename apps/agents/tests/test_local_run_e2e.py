"""A local directory run end to end over the real socket: files on disk → the reference client's
``agent_data`` → the scripted extraction model → outbox → inserts in the client's SQLite."""

from __future__ import annotations

import pytest

from apps.agents.models import OutboxStatus, RunStatus
from apps.assistant.testing.scripted_openai import failure

from .conftest import execute, one_task_per_file, outbox, rows, start_run, tool_actions, write_files

pytestmark = pytest.mark.django_db(transaction=True)


async def test_files_become_suggested_tasks_on_the_device(devices, user, llm, make_local_config, tmp_path):
    # given three markdown files and a picture the agent does not read
    write_files(tmp_path / "inbox", 3)
    (tmp_path / "inbox" / "photo.png").write_bytes(b"\x89PNG")
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path / "inbox")])
    llm.fallback = one_task_per_file

    # when the run executes
    run = await execute(await start_run(config))

    # then each file became one suggested, unapproved task in the client's SQLite
    tasks = rows(client)
    assert sorted(t["title"] for t in tasks) == ["Follow up note 0", "Follow up note 1", "Follow up note 2"]
    assert {(t["isAiSuggested"], t["isApproved"], t["priority"]) for t in tasks} == {(1, 0, "high")}
    assert all(t["dueDate"] == 1796083200000 for t in tasks)  # 2026-12-01T00:00Z in ms
    assert tool_actions(client) == {("insert", "tasks")}
    # and the device got the agent_run frame of the config
    assert client.agent_runs[0]["config"] == {
        "paths": [str(tmp_path / "inbox")],
        "file_extensions": [".md", ".txt"],
        "prompt_template": config.prompt_template,
        "data_types": ["tasks"],
    }
    # and the run log counts files and acknowledged inserts
    assert (run.status, run.items_processed, run.items_created, run.errors) == (RunStatus.SUCCESS, 3, 3, [])
    assert run.completed_at is not None
    assert run.lease_expires_at is None
    # and the outbox ids are the row ids on the device, all delivered
    items = await outbox(run_id=run.id)
    assert sorted(str(i.id) for i in items) == sorted(t["id"] for t in tasks)
    assert {i.status for i in items} == {OutboxStatus.DELIVERED}


async def test_the_extraction_model_sees_the_prompt_template_and_only_its_files(
    devices, user, llm, make_local_config, tmp_path
):
    # given
    write_files(tmp_path, 1)
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path)], prompt_template="Invoices are tasks.")
    llm.fallback = one_task_per_file

    # when
    await execute(await start_run(config))

    # then one extraction call, forced onto the one proposal tool, with the template as instructions
    (request,) = llm.chat_requests()
    assert request.tool_names == ["propose_new_items"]
    assert "Invoices are tasks." in request.system_prompt
    assert "Follow up note 0" in request.last_user_text
    assert "Follow up note 0" not in request.system_prompt


async def test_oversized_and_surplus_files_are_skipped_and_reported(
    devices, user, llm, make_local_config, tmp_path, settings
):
    # given a per-file limit of 200 bytes, at most 2 files a run, and 4 files of which one is too big
    settings.AGENTS_FILE_MAX_BYTES = 200
    settings.AGENTS_RUN_MAX_FILES = 2
    write_files(tmp_path, 3, size=50)
    write_files(tmp_path, 1, size=5000, prefix="zbig")
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path)])
    llm.fallback = one_task_per_file

    # when
    run = await execute(await start_run(config))

    # then two files were extracted; the big one and the third small one are named in the errors
    assert len(rows(client)) == 2
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.PARTIAL, 2, 2)
    assert len(run.errors) == 2
    assert any("note0002.md" in e and "limit of 2 files" in e for e in run.errors)
    assert any("zbig0000.md: 5000 bytes, over the per-file limit of 200" in e for e in run.errors)
    assert all(e.startswith("file_skipped: ") for e in run.errors)


async def test_run_total_byte_limit_skips_the_rest(devices, user, llm, make_local_config, tmp_path, settings):
    # given a run budget of 250 bytes and three files of 100
    settings.AGENTS_RUN_MAX_BYTES = 250
    write_files(tmp_path, 3, size=100)
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path)])
    llm.fallback = one_task_per_file

    # when
    run = await execute(await start_run(config))

    # then
    assert (run.status, run.items_created) == (RunStatus.PARTIAL, 2)
    assert run.errors == [f"file_skipped: {tmp_path / 'note0002.md'}: the run's limit of 250 bytes"]


async def test_a_device_that_is_offline_makes_the_run_an_error_with_the_reason(user, llm, make_local_config, tmp_path):
    # given a config bound to a device that never connected
    config = await make_local_config("laptop-away", [str(tmp_path)])

    # when
    run = await execute(await start_run(config))

    # then
    assert run.status == RunStatus.ERROR
    assert run.errors[0].startswith("device_offline: device laptop-away is offline")


async def test_extraction_failures_are_reported_and_the_other_files_still_count(
    devices, user, llm, make_local_config, tmp_path, settings
):
    # given two files, extracted one at a time; the model fails on the first call only
    settings.AGENTS_EXTRACTION_CONCURRENCY = 1
    write_files(tmp_path, 2)
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path)])
    llm.script(failure(500))
    llm.fallback = one_task_per_file

    # when
    run = await execute(await start_run(config))

    # then the failed file is named, the other one got through
    assert (run.status, run.items_processed, run.items_created) == (RunStatus.PARTIAL, 1, 1)
    assert len(rows(client)) == 1
    assert len(run.errors) == 1
    assert run.errors[0].startswith("extraction_failed: ")


async def test_the_device_is_asked_for_its_files_before_the_run_builds_its_model_client(
    devices, user, llm, make_local_config, tmp_path, monkeypatch
):
    # given a run, and the moment its pipeline (the model client) is built watched
    from apps.agents import local_runs

    write_files(tmp_path / "inbox", 2)
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path / "inbox")])
    llm.fallback = one_task_per_file
    sent: list[dict] = []
    sent_when_built: list[bool] = []
    real_send, real_pipeline = local_runs.send_to_device, local_runs.RunPipeline

    async def send_to_device(**kwargs):
        await real_send(**kwargs)
        sent.append(kwargs["frame"])

    def pipeline(**kwargs):
        sent_when_built.append(any(frame["type"] == "agent_run" for frame in sent))
        return real_pipeline(**kwargs)

    monkeypatch.setattr(local_runs, "send_to_device", send_to_device)
    monkeypatch.setattr(local_runs, "RunPipeline", pipeline)

    # when the run executes
    run = await execute(await start_run(config))

    # then agent_run had been sent when the pipeline was built (the device reads while the run gets
    # ready), and the run went through as ever
    assert sent_when_built == [True]
    assert (run.status, run.items_created) == (RunStatus.SUCCESS, 2)
    assert sorted(t["title"] for t in rows(client)) == ["Follow up note 0", "Follow up note 1"]
