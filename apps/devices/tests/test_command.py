"""``manage.py device``: the reference client as operators run it, against the real server."""

from __future__ import annotations

import io

from django.core.management import call_command

from apps.devices.tests.conftest import SOCKET_DB

pytestmark = SOCKET_DB


def test_device_chat_prints_the_streamed_answer_and_mutations(device_server, user, frame_handlers, tmp_path):
    # given a home_request handler that streams two chunks and a mutation
    async def home(session, frame):
        await session.send({"type": "stream_start", "request_id": frame.request_id})
        for chunk in ("Hello, ", frame.message):
            await session.send({"type": "stream_text", "request_id": frame.request_id, "chunk": chunk})
        await session.send(
            {
                "type": "stream_end",
                "request_id": frame.request_id,
                "mutations": [{"action": "insert", "table": "tasks", "data": {"title": "x"}}],
            }
        )

    frame_handlers.register_request_handler("home_request", home)
    out = io.StringIO()

    # when an operator chats as alice
    call_command(
        "device",
        "chat",
        "world",
        "--user",
        user.email,
        "--url",
        device_server.url,
        "--db",
        str(tmp_path / "d.sqlite3"),
        stdout=out,
    )

    # then the streamed text and the mutation are printed
    assert "Hello, world" in out.getvalue()
    assert '"table": "tasks"' in out.getvalue()


def test_device_call_runs_a_tool_call_on_the_cli_device(device_server, user, tmp_path):
    out = io.StringIO()
    call_command(
        "device",
        "call",
        "insert",
        "clients",
        '{"name": "ACME"}',
        "--user",
        user.email,
        "--url",
        device_server.url,
        "--db",
        str(tmp_path / "d.sqlite3"),
        stdout=out,
    )
    assert '"name": "ACME"' in out.getvalue()
