"""The reference device client: speaks the device socket the way the Electron app does.

Connects with the access JWT, sends ``device_hello`` (with ``capabilities`` when given: then
the server's ``device_welcome`` is kept in ``welcome``), answers pings, runs every ``tool_call``
on its ``LocalStore``, keeps ``agent_progress`` frames (``progress``, ``on_progress``) and can send
``home_request`` / ``floating_request`` and stream the answer. Tests and benchmarks drive it;
operators use it through ``manage.py device``.
Only ``websockets``, ``orjson`` and the store: no Django needed on the device side.

A cheap tool call on the client's own store (``get``, ``insert``, ``update``, …: a few µs) is
answered in the read loop: the store is synchronous SQLite, so a task per call bought no concurrency
and cost a loop turn (a thread hop costs more than the call). An action whose cost grows with the
store (``SLOW_ACTIONS``: a ``select`` of up to 500 rows, a ``vector_search`` that scores every
vector) runs in a worker thread, so pings and the frames behind it are still read and a server never
takes a busy device for a silent one. The store's calls keep their order: while one runs in the
thread, the calls after it wait behind it (the *lane*) and are answered in the order they came.
A replaced ``tool_handler`` (or an overridden ``run_tool``) may wait, so each of its calls runs in a
task of its own and slow calls overlap.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from .agent_files import FIRST_PIECE_FILES, folder_files, pieces
from .store import LocalStore, ToolError

SOCKET_PATH = "/api/v1/ws/device"

ToolHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
AgentRunHandler = Callable[[dict[str, Any]], Awaitable[None]]
ProgressHandler = Callable[[dict[str, Any]], None]

# What this client understands beyond the seed protocol (``DeviceClient(capabilities=...)``).
CLIENT_CAPABILITIES = ("agent_progress", "usage_notice")

# Store actions run in a worker thread (measured on 2,000 tasks and 1,000 1536-d vectors: get 6 µs,
# insert 15 µs, a thread hop 30 µs; select 0.5 to 3 ms, vector_search 0.9 s, both growing with the store).
SLOW_ACTIONS = frozenset({"select", "vector_search"})

# How many of the latest frames of each kind a client keeps (``received``, ``tool_calls``, …): it
# may run for days (``manage.py device``); tests read the latest few.
HISTORY = 1000


class DeviceClient:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        device_id: str | None = None,
        store: LocalStore | None = None,
        agent_ids: list[str] | None = None,
        name: str | None = None,
        platform: str | None = None,
        token_in_query: bool = False,
        origin: str | None = None,
        answer_pings: bool = True,
        capabilities: list[str] | None = None,
    ) -> None:
        self.url = socket_url(url)
        self.token = token
        self.device_id = device_id or f"device-{uuid.uuid4().hex[:12]}"
        self.store = store or LocalStore()
        self.agent_ids = agent_ids or []
        self.name = name
        self.platform = platform
        self.token_in_query = token_in_query
        self.origin = origin
        self.answer_pings = answer_pings
        self.capabilities = capabilities  # None: a seed client's hello (no capabilities field)
        self.welcome: dict[str, Any] | None = None
        self.progress: list[dict[str, Any]] = []
        self.on_progress: ProgressHandler | None = None
        self.notices: list[dict[str, Any]] = []  # usage_notice frames
        self.received: list[str] = []  # the type of every frame received, in order
        # Replaceable per test: returns the tool_result fields, or None to leave the call unanswered.
        self.tool_handler: ToolHandler = self.run_tool
        # The default handler, as made here: while ``tool_handler`` is still this very object and
        # ``run_tool`` is not overridden, calls are answered from the store in the read loop.
        self._store_handler = self.tool_handler if type(self).run_tool is DeviceClient.run_tool else None
        # Replaceable per test: answers an ``agent_run`` frame (default: read the folders, send them).
        self.agent_handler: AgentRunHandler = self.run_agent
        self.agent_runs: list[dict[str, Any]] = []
        self.ws: websockets.ClientConnection | None = None
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # everything not handled here
        self.pings = 0
        self.tool_calls: list[dict[str, Any]] = []
        self._streams: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        # Store calls waiting behind one running in the worker thread (None: none is running there).
        self._lane: collections.deque[dict[str, Any]] | None = None

    # --- connection -----------------------------------------------------------------------

    async def connect(self, *, hello: bool = True) -> DeviceClient:
        url, headers = self.url, {}
        if self.token and self.token_in_query:
            url += ("&" if "?" in url else "?") + f"token={self.token}"
        elif self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.ws = await websockets.connect(
            url,
            additional_headers=headers,
            origin=Origin(self.origin) if self.origin is not None else None,
            max_size=None,
            ping_interval=None,
        )
        if hello:
            await self.hello()
        self._reader = asyncio.create_task(self._read())
        return self

    async def hello(self) -> None:
        frame: dict[str, Any] = {"type": "device_hello", "device_id": self.device_id, "agent_ids": self.agent_ids}
        if self.name:
            frame["name"] = self.name
        if self.platform:
            frame["platform"] = self.platform
        if self.capabilities is not None:
            frame["capabilities"] = list(self.capabilities)
        await self.send(frame)

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        try:
            # orjson's bytes go out as a text frame as they are (no decode and re-encode).
            await self.ws.send(orjson.dumps(frame), text=True)
        except orjson.JSONEncodeError:
            # What orjson refuses and json writes (a lone surrogate, escaped; tests send such).
            await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await self._reader
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> int | None:
        """Wait until the server closes the socket; return its close code."""
        assert self.ws is not None
        await self.ws.wait_closed()
        return self.close_code

    @property
    def close_code(self) -> int | None:
        received = self.ws.protocol.close_rcvd if self.ws is not None else None
        return received.code if received is not None else None

    async def __aenter__(self) -> DeviceClient:
        if self.ws is None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the read loop --------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            while True:
                # Bytes as they came: orjson reads (and checks) UTF-8 itself, no str is made first.
                frame = parse_frame(await self.ws.recv(decode=False))
                kind = frame.get("type")
                _remember(self.received, str(kind))
                if kind == "ping":
                    self.pings += 1
                    if self.answer_pings:
                        await self.send({"type": "pong"})
                elif kind == "tool_call":
                    _remember(self.tool_calls, frame)
                    if self.tool_handler is not self._store_handler:
                        self._start(self._answer_tool(frame))
                    elif self._lane is not None:
                        self._lane.append(frame)
                    elif frame.get("action") in SLOW_ACTIONS:
                        self._lane = collections.deque((frame,))
                        self._start(self._answer_lane(self._lane))
                    else:
                        await self._answer_from_store(frame)
                elif kind == "agent_run":
                    _remember(self.agent_runs, frame)
                    self._start(self._answer_agent_run(frame))
                elif kind == "device_welcome":
                    self.welcome = frame
                    self.frames.put_nowait(frame)
                elif kind == "agent_progress":
                    _remember(self.progress, frame)
                    if self.on_progress is not None:
                        self.on_progress(frame)
                elif kind == "usage_notice":
                    _remember(self.notices, frame)
                    self.frames.put_nowait(frame)
                elif frame.get("request_id") in self._streams:
                    self._streams[frame["request_id"]].put_nowait(frame)
                else:
                    self.frames.put_nowait(frame)
        except ConnectionClosed:
            pass
        finally:
            for queue in self._streams.values():
                queue.put_nowait({"type": "closed"})

    def _start(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_tool(self, call: dict[str, Any]) -> None:
        try:
            result = await self.tool_handler(call)
        except ToolError as exc:
            result = {"error": str(exc)}
        except Exception as exc:  # the Electron app reports any failure as the call's error
            result = {"error": f"{type(exc).__name__}: {exc}"}
        if result is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await self.send({"type": "tool_result", "id": call["id"], **result})

    async def run_tool(self, call: dict[str, Any]) -> dict[str, Any]:
        return self.store.execute(call)

    async def _answer_from_store(self, call: dict[str, Any]) -> None:
        """``_answer_tool`` for the default handler, without its task: ``run_tool`` never waits."""
        result = self._store_result(call)
        with contextlib.suppress(ConnectionClosed):
            await self.send({"type": "tool_result", "id": call["id"], **result})

    async def _answer_lane(self, lane: collections.deque[dict[str, Any]]) -> None:
        """Answer the lane's calls in order, each in the worker thread, until none is left."""
        try:
            while lane:
                call = lane.popleft()
                result = await asyncio.to_thread(self._store_result, call)
                with contextlib.suppress(ConnectionClosed):
                    await self.send({"type": "tool_result", "id": call["id"], **result})
        finally:
            self._lane = None  # no wait between the last look at the lane and this

    def _store_result(self, call: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.store.execute(call)
        except ToolError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # as _answer_tool
            return {"error": f"{type(exc).__name__}: {exc}"}

    async def _answer_agent_run(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.agent_handler(frame)

    async def run_agent(self, frame: dict[str, Any]) -> None:
        """Read the run's folders and send them: ``agent_data`` pieces, then ``agent_complete``.

        Files are read as the pieces go (each piece in a thread), so the first piece leaves after
        ``FIRST_PIECE_FILES`` files, not after the whole folder."""
        config = frame.get("config") or {}
        errors: list[str] = []
        files = folder_files(config.get("paths") or [], config.get("file_extensions") or [], errors)
        groups = pieces(files, first_files=FIRST_PIECE_FILES)
        sent = 0
        while (piece := await asyncio.to_thread(next, groups, None)) is not None:
            await self.send({"type": "agent_data", "run_id": frame["run_id"], "files": piece})
            sent += len(piece)
        await self.send({"type": "agent_complete", "run_id": frame["run_id"], "files_read": sent, "errors": errors})

    async def next_frame(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can drop a cancellation
            return await self.frames.get()

    # --- requests -------------------------------------------------------------------------

    async def request(self, frame: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Send a request frame and yield the frames answering it until ``stream_end`` or ``error``."""
        request_id = frame.setdefault("request_id", uuid.uuid4().hex)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._streams[request_id] = queue
        try:
            await self.send(frame)
            while True:
                reply = await queue.get()
                if reply["type"] == "closed":
                    return
                yield reply
                if reply["type"] in ("stream_end", "error"):
                    return
        finally:
            self._streams.pop(request_id, None)

    def home_request(self, message: str, **extra: Any) -> AsyncIterator[dict[str, Any]]:
        return self.request({"type": "home_request", "message": message, **extra})

    def floating_request(self, message: str, scope: dict[str, Any], **extra: Any) -> AsyncIterator[dict[str, Any]]:
        return self.request({"type": "floating_request", "message": message, "scope": scope, **extra})

    async def run_forever(self) -> int | None:
        """Serve tool calls and pings until the server closes the socket."""
        assert self._reader is not None
        await self._reader
        return self.close_code


def parse_frame(text: str | bytes) -> dict[str, Any]:
    """A server frame's JSON: orjson, or ``json`` for what orjson refuses and json reads (NaN; the
    server's own encoder, orjson, never writes it)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _remember(history: list, item: Any) -> None:
    """Append ``item``, dropping the oldest once the list is twice ``HISTORY`` long (a list, so
    tests can still compare and slice it; the trim is amortised over ``HISTORY`` appends)."""
    history.append(item)
    if len(history) > 2 * HISTORY:
        del history[:-HISTORY]


def socket_url(url: str) -> str:
    """The device socket's URL from the server's base URL (``ws://host:8000``) or the full one."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, SOCKET_PATH, parts.query, ""))
    return url
