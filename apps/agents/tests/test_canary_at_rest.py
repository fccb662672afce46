"""User content never rests in plaintext: a unique canary written through every door (agent configs
over REST, a journey, a chat streamed over the socket, a local run's agent_run and agent_data over
the channel layer) is found in no file of PostgreSQL (heap, WAL) or Redis (AOF, RDB) afterwards,
nor in any command Redis received meanwhile (what crosses it between processes, pub/sub included)."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from pathlib import Path

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from apps.assistant.testing.scripted_openai import text, tool_call
from apps.assistant.tests.conftest import home, streamed_text

from .conftest import client_for, cloud_body, execute, local_body, one_task_per_file, start_run, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    # os.walk, not Path.rglob: the server (another test run's database dropped meanwhile) may remove a
    # directory while it is walked, which os.walk skips and rglob raised on.
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:  # a socket, or a file the server just removed
                continue
            if needle in data:
                found.append(str(path.relative_to(root)))
    return found


def _checkpoint_postgres() -> Path:
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")  # heap pages and WAL on disk
        cursor.execute("SELECT pg_switch_wal()")
        cursor.execute("SHOW data_directory")
        (data_directory,) = cursor.fetchone()
    return Path(data_directory)


def _flush_redis() -> Path:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.save()  # dump.rdb now; the AOF is kept as appended (it still holds expired keys)
        return Path(str(client.config_get("dir")["dir"]))
    finally:
        client.close()


class _RedisWire:
    """Every command Redis receives from now on (``MONITOR``), as the raw lines it reports."""

    def __init__(self) -> None:
        self._client = redis.Redis.from_url(settings.REDIS_URL)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the connection is closed by stop()
            while True:
                line = self._monitor.connection.read_response()
                self.lines.append(line.decode(errors="replace") if isinstance(line, bytes) else str(line))

    async def stop(self) -> list[str]:
        # A marker command: once it is read, everything sent before it has been read too.
        marker = f"wire-end-{uuid.uuid4().hex}"
        await sync_to_async(self._client.echo)(marker)
        await wait_until(lambda: any(marker in line for line in self.lines))
        self._monitor.connection.disconnect()
        self._reader.join(timeout=10)
        self._client.close()
        return self.lines


async def test_a_canary_written_through_every_door_rests_in_no_database_or_redis_file(
    devices, user, llm, make_local_config, tmp_path
):
    canary = f"canary-{uuid.uuid4().hex}"
    api = await sync_to_async(client_for)(user)
    wire = await sync_to_async(_RedisWire)()

    # given agent configs created over REST, with the canary in each content field
    local = await sync_to_async(api.post)(
        "/api/v1/agents/local", local_body(name=f"n {canary}", prompt_template=f"p {canary}"), format="json"
    )
    cloud_filter = {"labels": [f"l {canary}"], "senders": [], "date_range": {"from": "2026-01-01"}}
    cloud = await sync_to_async(api.post)(
        "/api/v1/agents/cloud", cloud_body(name=f"c {canary}", filter_config=cloud_filter), format="json"
    )
    assert (local.status_code, cloud.status_code) == (201, 201), (local.content, cloud.content)

    # and a journey answered and finished with it
    llm.script(
        tool_call("JourneyTurn", {"message": f"q {canary}", "done": False, "prompt_template": ""}),
        tool_call("JourneyTurn", {"message": "Done.", "done": True, "prompt_template": f"t {canary}"}),
    )
    started = (await sync_to_async(api.post)("/api/v1/agents/journey/start", {"agent_type": "local"})).json()
    for answer in (f"a1 {canary}", f"a2 {canary}"):
        reply = await sync_to_async(api.post)(
            "/api/v1/agents/journey/message", {"session_id": started["session_id"], "message": answer}
        )
        assert reply.status_code == 200, reply.content

    # and a chat streamed over the socket
    client = await devices(user)
    llm.script(text(f"Noted: {canary}.", chunk_size=5))
    frames = await home(client, f"Remember {canary}")
    assert canary in streamed_text(frames)

    # and a local run whose prompt goes out in agent_run and whose file comes back in agent_data
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "note.md").write_text(f"Follow up {canary}\n")
    config = await make_local_config(client.device_id, [str(folder)], prompt_template=f"run {canary}")
    llm.fallback = one_task_per_file
    await execute(await start_run(config))
    assert client.agent_runs[-1]["config"]["prompt_template"] == f"run {canary}"

    # and the owner still reads the plaintext through the API
    listed = (await sync_to_async(api.get)("/api/v1/agents/cloud")).json()
    assert listed[0]["filter_config"]["labels"] == [f"l {canary}"]

    # then no command that crossed Redis carried it
    crossed = await wire.stop()
    assert crossed, "MONITOR saw nothing: the check would prove nothing"
    assert [line[:200] for line in crossed if canary in line] == []

    # when both servers put everything on disk
    pg_dir = await sync_to_async(_checkpoint_postgres)()
    redis_dir = await sync_to_async(_flush_redis)()
    if not (pg_dir.is_dir() and redis_dir.is_dir()):
        pytest.skip("PostgreSQL or Redis is not the embedded one: its files are not readable here")

    # then no file of either holds the canary
    assert _files_holding(pg_dir, canary.encode()) == []
    assert _files_holding(redis_dir, canary.encode()) == []
