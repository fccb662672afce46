"""``manage.py device``: the reference client as operators run it, against the real server."""

from __future__ import annotations

import io

from django.core.management import call_command

from apps.devices.services import user_frame_broadcast
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

    # when an operator chats as alice
    printed = _device_chat(device_server, user, tmp_path, "world")

    # then the streamed text and the mutation are printed
    assert "Hello, world" in printed
    assert '"table": "tasks"' in printed


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


def _chat_during_a_progress_broadcast(device_server, user, frame_handlers, tmp_path, *extra: str) -> str:
    """Chat once while the server broadcasts an agent_progress frame to the user; what was printed."""

    async def home(session, frame):
        await user_frame_broadcast(
            user_id=session.user_id,
            frame={
                "type": "agent_progress",
                "run_id": "4f1c2a9e-run",
                "agent_id": "9b7d03aa-agent",
                "phase": "extracting",
                "files_read": 12,
                "items_extracted": 5,
                "items_delivered": 3,
            },
            capability="agent_progress",
        )
        await session.send({"type": "stream_start", "request_id": frame.request_id})
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    return _device_chat(device_server, user, tmp_path, "hi", *extra)


def _device_chat(device_server, user, tmp_path, message: str, *extra: str) -> str:
    """What ``manage.py device chat MESSAGE`` prints, as ``user``, against the test server."""
    out = io.StringIO()
    call_command(
        "device",
        "chat",
        message,
        "--user",
        user.email,
        "--url",
        device_server.url,
        "--db",
        str(tmp_path / "d.sqlite3"),
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_device_declares_its_capabilities_and_prints_agent_progress(device_server, user, frame_handlers, tmp_path):
    printed = _chat_during_a_progress_broadcast(device_server, user, frame_handlers, tmp_path)
    assert "server protocol 2; capabilities: agent_progress, usage_notice" in printed
    assert "agent 9b7d03aa run 4f1c2a9e [extracting] files 12, items extracted 5, delivered 3" in printed


def test_device_seed_says_hello_without_capabilities_and_gets_no_progress(
    device_server, user, frame_handlers, tmp_path
):
    printed = _chat_during_a_progress_broadcast(device_server, user, frame_handlers, tmp_path, "--seed")
    assert "server protocol" not in printed
    assert "[extracting]" not in printed
