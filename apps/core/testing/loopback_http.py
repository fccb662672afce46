"""A real HTTP server on 127.0.0.1 in a daemon thread: the base of every fake of an outside API
(Stripe, Google and Microsoft, an OpenID provider), so tests replace only the HTTP boundary."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackHttpServer:
    """Subclasses call ``self._serve(handler_class)`` in ``__init__``; then ``start()``/``stop()``."""

    server: ThreadingHTTPServer
    thread: threading.Thread

    def _serve(self, handler_class: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.server.daemon_threads = True
        # ``stop`` waits for the loop to see the shutdown, up to one poll interval (0.5 s by default):
        # a test that starts a fake per test (the schema test: 282 operations) waited ~0.25 s each.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]  # server_address is typed as possibly bytes
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
