"""Fixtures for device-socket tests: a real ASGI server (uvicorn, own thread and event loop) on
loopback against the test database and Redis, and reference clients connected to it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from asgiref.sync import sync_to_async

from apps.accounts.tokens import tokens_issue
from apps.core.testing.asgi_server import AsgiServerThread
from apps.devices import connections, handlers
from apps.devices.capabilities import capable_sockets
from apps.devices.client import DeviceClient
from apps.devices.models import Device
from apps.devices.presence_index import KEY
from apps.devices.selectors import device_online_channel


class ServerThread(AsgiServerThread):
    """The live ASGI server; ``url`` is the device socket's."""

    @property
    def url(self) -> str:
        return self.ws_url("/api/v1/ws/device")


@pytest.fixture(scope="session")
def device_server(django_db_setup, django_db_blocker):
    server = ServerThread(name="device-test-server")
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fast_device_settings(settings):
    """Short timeouts so the suite stays fast; tests that exercise one of them shorten it further."""
    settings.DEVICE_HELLO_TIMEOUT = 2.0
    settings.DEVICE_PING_INTERVAL = 60.0
    settings.DEVICE_PONG_TIMEOUT = 1.0
    settings.DEVICE_PRESENCE_FLUSH_INTERVAL = 60.0
    settings.DEVICE_TOOL_CALL_TIMEOUT = 3.0
    settings.DEVICE_FRAME_RATE = 1000.0
    settings.DEVICE_FRAME_BURST = 1000
    settings.DEVICE_FLOOD_CLOSE_AFTER = 1000
    return settings


# Socket tests need committed rows (the server thread has its own connections). Flushing only these
# apps' tables after each test (instead of every table plus post_migrate) keeps them fast.
SOCKET_DB = pytest.mark.django_db(
    transaction=True,
    available_apps=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sites",
        "apps.accounts",
        "apps.devices",
    ],
)


@pytest.fixture(autouse=True)
def frame_handlers():
    """Tests see only the frame/connect handlers they register; other apps' come back afterwards."""
    saved = dict(handlers._frame_handlers)
    saved_connect = list(handlers._connect_handlers)
    saved_reopeners = list(handlers._calls_reopeners)
    handlers._frame_handlers.clear()
    yield handlers
    handlers._frame_handlers.clear()
    handlers._frame_handlers.update(saved)
    handlers._connect_handlers[:] = saved_connect
    handlers._calls_reopeners[:] = saved_reopeners


async def wait_until(predicate: Callable, timeout: float = 5.0, interval: float = 0.02) -> None:  # noqa: ASYNC109
    """Poll ``predicate`` (sync or async) until true; fail the test if it never becomes true."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


async def capable_of(user, capability: str = "agent_progress") -> None:
    """Wait until a hello's capabilities are recorded (the hello is handled on the server's loop)."""

    async def recorded() -> bool:
        return bool(await capable_sockets(user_id=str(user.id), capability=capability))

    await wait_until(recorded)


def held_socket(user, device_id: str):
    """The server's consumer of a device (the test server runs in this process, on its own loop)."""
    for table in list(connections._by_loop.values()):
        consumer = table.get((str(user.id), device_id))
        if consumer is not None:
            return consumer
    raise AssertionError(f"no socket holds {device_id}")


async def device_row(user, device_id: str) -> Device | None:
    return await sync_to_async(Device.objects.filter(user=user, device_id=device_id).first)()


async def presence_entries_are(redis, users, *, expected: int) -> bool:
    """The presence index holds ``expected`` entries across these users' devices."""
    counts = [await redis.hlen(KEY.format(user_id=str(user.id))) for user in users]
    return sum(counts) == expected


async def online_rows_are(users, *, expected: int) -> bool:
    """The database's history has ``expected`` of these users' devices online."""
    count = await sync_to_async(Device.objects.filter(user__in=users, is_online=True).count)()
    return count == expected


async def wait_online(user, device_id: str, channel_name: str | None = None) -> Device:
    async def online() -> bool:
        # Online as the database's history and as the presence index (the truth callers read, written
        # once the socket takes calls) both say: a test can call the device as soon as this returns.
        row = await device_row(user, device_id)
        if not (row and row.is_online and (channel_name is None or row.channel_name != channel_name)):
            return False
        indexed = await device_online_channel(user_id=user.id, device_id=device_id)
        return indexed is not None and indexed != channel_name

    await wait_until(online)
    row = await device_row(user, device_id)
    assert row is not None
    return row


async def hello_work_done(device_server, user, device_id: str) -> None:
    """What the device's hello started beside its answer (the connect handlers: the agents' outbox
    flush and due runs, the calls reopeners) has ended, on the server's loop. A test that then
    changes what those handlers read (outbox items, runs) races them no more."""

    async def idle() -> bool:
        consumer = connections.local_consumer(user_id=str(user.id), device_id=device_id)
        return consumer is not None and not cast(Any, consumer).background  # the consumer's spawned tasks

    await wait_until(lambda: asyncio.to_thread(device_server.run, idle()))


@pytest.fixture
async def devices(device_server) -> AsyncIterator[Callable[..., Awaitable[DeviceClient]]]:
    """``await devices(user, **client_kwargs)`` → a connected reference client that said hello (and is
    recorded online unless ``wait=False``); every client is closed at the end of the test."""
    clients: list[DeviceClient] = []

    async def connect(
        user=None, *, token: str | None = None, wait: bool = True, hello: bool = True, **kwargs
    ) -> DeviceClient:
        if token is None and user is not None:
            token = (await sync_to_async(tokens_issue)(user=user)).access_token
        client = DeviceClient(device_server.url, token, **kwargs)
        clients.append(client)
        await client.connect(hello=hello)
        if wait and hello and user is not None:
            await wait_online(user, client.device_id)
        return client

    yield connect
    for client in clients:
        await client.close()


class Gate:
    """Opened by the test, awaited by a handler: the handler runs on the server thread's event loop,
    so an ``asyncio.Event`` of the test's loop would never wake it; a thread-safe event is awaited
    in a worker thread."""

    def __init__(self) -> None:
        self._flag = threading.Event()

    def open(self) -> None:
        self._flag.set()

    async def passed(self) -> None:
        if not await asyncio.to_thread(self.passed_in_thread):
            raise TimeoutError("the test never opened the gate")

    def passed_in_thread(self) -> bool:
        """For code that already runs in a worker thread: blocks it until the gate opens (or 15 s)."""
        return self._flag.wait(15)


def chunk(request_id: str, text: str) -> dict[str, Any]:
    return {"type": "stream_text", "request_id": request_id, "chunk": text}


async def frames_until_end(client, request_id: str, *, first: int = 0) -> list[dict[str, Any]]:
    """Frames of ``request_id`` arriving on ``client`` (outside ``client.request``) up to ``stream_end``."""
    frames: list[dict[str, Any]] = []
    while True:
        try:
            frame = await client.next_frame(10)
        except TimeoutError:
            raise AssertionError(f"{request_id}: no stream_end; got {frames}") from None
        if frame.get("request_id") != request_id:
            continue
        frames.append(frame)
        if frame["type"] == "stream_end" or (first and len(frames) >= first):
            return frames
