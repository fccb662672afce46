"""A scripted OpenAI-compatible HTTP server on loopback, for tests, benchmarks and demos.

It serves ``POST /v1/chat/completions`` (JSON or server-sent events, with tool calls) and
``POST /v1/embeddings`` so the real langchain-openai clients run over HTTP. Chat answers
come from a script: a queue of replies, each a :class:`Reply` or a callable that builds one
from the recorded request (so a reply can quote the rows a tool returned). When the queue
is empty the ``fallback`` callable answers, if set. Every request is recorded, so tests can
assert on what the model was shown.

Embeddings are deterministic: each word of the input is hashed onto a few of the 1536
dimensions, so texts sharing words are close in cosine distance — enough for memory
recall tests without any model.

Standalone (a demo model that answers every message with a short echo)::

    python -m apps.assistant.testing.scripted_openai --port 8765
"""

from __future__ import annotations

import argparse
import array
import base64
import contextlib
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMBEDDING_DIMENSIONS = 1536


@dataclass
class ToolCall:
    """One tool call the scripted model makes; ``arguments`` may be a raw (malformed) string."""

    name: str
    args: dict[str, Any] | str = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")

    def arguments_json(self) -> str:
        return self.args if isinstance(self.args, str) else json.dumps(self.args)


@dataclass
class Reply:
    """One chat completion: text, tool calls, an HTTP error, or a stall."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    status: int = 200  # anything else answers an OpenAI-shaped error body
    delay: float = 0.0  # seconds before answering (timeouts, cancel tests)
    chunk_size: int = 4  # characters per streamed text delta
    chunk_delay: float = 0.0  # seconds between streamed deltas
    break_stream_after: int | None = None  # drop the connection after N text deltas
    written_at: list[float] | None = None  # if a list, perf_counter() after each text delta is sent (benchmarks)
    tool_args_chunk: int | None = None  # stream each call's arguments in pieces of this many characters
    hold_before_finish: threading.Event | None = None  # after the tool calls, wait (≤ 15 s) for this event
    usage: Usage | None = None  # the tokens reported for this call (DEFAULT_USAGE when unset)


@dataclass(frozen=True)
class Usage:
    """The usage a scripted call reports (``cached`` is part of ``prompt``, as OpenAI counts it)."""

    prompt: int
    completion: int
    cached: int = 0

    def as_report(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        }


DEFAULT_USAGE = Usage(prompt=101, completion=11, cached=0)


def embedding_tokens(texts: list[str]) -> int:
    """The tokens the scripted server reports for an embeddings call: one per word of its input."""
    return sum(len(re.findall(r"\w+", str(item))) for item in texts)


def text(content: str, **options: Any) -> Reply:
    return Reply(text=content, **options)


def tool_call(name: str, args: dict[str, Any] | str | None = None, **options: Any) -> Reply:
    return Reply(tool_calls=[ToolCall(name=name, args=args if args is not None else {})], **options)


def failure(status: int = 500, **options: Any) -> Reply:
    return Reply(status=status, **options)


ReplySpec = Reply | Callable[[dict[str, Any]], Reply]


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def system_prompt(self) -> str:
        return "\n".join(_content_text(m) for m in self.messages if m.get("role") in ("system", "developer"))

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", [])]

    @property
    def last_user_text(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        return _content_text(users[-1]) if users else ""

    @property
    def last_tool_text(self) -> str:
        tools = [m for m in self.messages if m.get("role") == "tool"]
        return _content_text(tools[-1]) if tools else ""


def _content_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def embed_text(text_: str) -> list[float]:
    """A deterministic bag-of-words embedding, L2-normalised."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"\w+", text_.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        for i in range(0, 12, 4):
            index = int.from_bytes(digest[i : i + 4], "big") % EMBEDDING_DIMENSIONS
            vector[index] += 1.0 if digest[i] % 2 == 0 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if not norm:  # no words: a fixed unit vector keeps cosine distance defined
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


def _vector_answer(vector: list[float], as_base64: bool) -> list[float] | str:
    return base64.b64encode(array.array("f", vector).tobytes()).decode() if as_base64 else vector


class ScriptedOpenAI:
    """The server: ``start()``, queue replies with ``script(...)``, read ``requests``, ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._queue: deque[ReplySpec] = deque()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.fallback: Callable[[dict[str, Any]], Reply] | None = None
        self.embedding_failure: int | None = None  # an HTTP status to answer embeddings with
        # Answer vectors in base64 when asked, as OpenAI does (off: numbers, as some compatible servers).
        self.embedding_base64 = False
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ----- lifecycle ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]  # server_address is typed as possibly bytes
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedOpenAI:
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- script ------------------------------------------------------------------------
    def script(self, *replies: ReplySpec) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.fallback = None
            self.embedding_failure = None
            self.embedding_base64 = False

    @property
    def pending(self) -> int:
        return len(self._queue)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            spec = self._queue.popleft() if self._queue else None
        if spec is None:
            if self.fallback is None:
                return Reply(status=500, text="scripted server: no reply queued")
            return self.fallback(body)
        return spec(body) if callable(spec) else spec

    # ----- HTTP --------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: with Nagle's algorithm the body waits for the
            # client's delayed ACK of the headers (~40 ms a reply), which no real model server adds.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
                    return
                with server._lock:
                    server.requests.append(
                        RecordedRequest(
                            path=self.path, body=body, headers={k.lower(): v for k, v in self.headers.items()}
                        )
                    )
                if self.path.endswith("/chat/completions"):
                    self._chat(body)
                elif self.path.endswith("/embeddings"):
                    self._embeddings(body)
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _embeddings(self, body: dict[str, Any]) -> None:
                if server.embedding_failure:
                    error = {"error": {"message": "scripted failure", "type": "server_error"}}
                    self._json(server.embedding_failure, error)
                    return
                inputs = body.get("input")
                inputs = inputs if isinstance(inputs, list) else [inputs]
                as_base64 = server.embedding_base64 and body.get("encoding_format") == "base64"
                data = [
                    {"object": "embedding", "index": i, "embedding": _vector_answer(embed_text(str(item)), as_base64)}
                    for i, item in enumerate(inputs)
                ]
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body.get("model", "scripted"),
                        "usage": {
                            "prompt_tokens": embedding_tokens(inputs),
                            "total_tokens": embedding_tokens(inputs),
                        },
                    },
                )

            def _chat(self, body: dict[str, Any]) -> None:
                reply = server._next_reply(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    message = reply.text or "scripted failure"
                    self._json(reply.status, {"error": {"message": message, "type": "server_error", "code": None}})
                    return
                if body.get("stream"):
                    self._chat_stream(body, reply)
                else:
                    self._chat_json(body, reply)

            def _chat_json(self, body: dict[str, Any], reply: Reply) -> None:
                message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
                if reply.tool_calls:
                    message["tool_calls"] = [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json()}}
                        for c in reply.tool_calls
                    ]
                self._json(
                    200,
                    {
                        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "scripted"),
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                            }
                        ],
                        "usage": (reply.usage or DEFAULT_USAGE).as_report(),
                    },
                )

            def _chat_stream(self, body: dict[str, Any], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")  # so a dropped stream is detectably incomplete
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

                def write(data: bytes) -> None:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
                model = body.get("model", "scripted")

                def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
                    payload = {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                    write(f"data: {json.dumps(payload)}\n\n".encode())

                try:
                    chunk({"role": "assistant", "content": ""})
                    pieces = [reply.text[i : i + reply.chunk_size] for i in range(0, len(reply.text), reply.chunk_size)]
                    for n, piece in enumerate(pieces):
                        if reply.break_stream_after is not None and n >= reply.break_stream_after:
                            return  # the connection closes mid-stream
                        chunk({"content": piece})
                        if reply.written_at is not None:
                            reply.written_at.append(time.perf_counter())
                        if reply.chunk_delay:
                            time.sleep(reply.chunk_delay)
                    for index, call in enumerate(reply.tool_calls):
                        arguments = call.arguments_json()
                        size = reply.tool_args_chunk or max(len(arguments), 1)
                        pieces = [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]
                        for n, piece in enumerate(pieces):
                            # Like OpenAI: the first delta names the call, the next ones only add arguments.
                            delta: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
                            if n == 0:
                                delta.update(id=call.id, type="function")
                                delta["function"]["name"] = call.name
                            chunk({"tool_calls": [delta]})
                    if reply.hold_before_finish is not None:
                        reply.hold_before_finish.wait(15)
                    chunk({}, "tool_calls" if reply.tool_calls else "stop")
                    if (body.get("stream_options") or {}).get("include_usage"):
                        payload = {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": int(time.time()),
                            "model": model,
                            "choices": [],
                            "usage": (reply.usage or DEFAULT_USAGE).as_report(),
                        }
                        write(f"data: {json.dumps(payload)}\n\n".encode())
                    write(b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler


def _demo_reply(body: dict[str, Any]) -> Reply:
    request = RecordedRequest(path="", body=body)
    return Reply(text=f"(scripted model) You said: {request.last_user_text[:200]}", chunk_size=3, chunk_delay=0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    options = parser.parse_args()
    server = ScriptedOpenAI(options.host, options.port)
    server.fallback = _demo_reply
    print(f"Scripted OpenAI-compatible server: OPENAI_BASE_URL={server.base_url}")  # noqa: T201 - a CLI
    with contextlib.suppress(KeyboardInterrupt):
        server._server.serve_forever()


if __name__ == "__main__":
    main()
