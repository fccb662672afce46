"""The real ASGI server (uvicorn serving ``adiuva.asgi``) in a separate process, for tests that need
another server process: one that can be killed, or that holds sockets the test process does not.

The child runs the test settings with the test process's environment (so the same
``ADIUVA_TEST_RUN`` Redis databases) and the test database the test process uses; tests that use
it need committed rows (``django_db(transaction=True)``). ``python -m apps.core.testing.asgi_process
DATABASE_NAME PORT [MODULE...]`` is the child's entry point; it imports each MODULE once Django is
set up (test frame handlers the child should serve) and runs uvicorn with its lifespan events, as
the Procfile does, so SIGTERM drains it (``terminate``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_SECONDS = 60


class AsgiServerProcess:
    def __init__(self, *, database: str, imports: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.database = database
        self.imports = imports
        self.env = env or {}
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the child and wait until it accepts connections (blocking)."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "adiuva.settings.test", "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [sys.executable, "-m", "apps.core.testing.asgi_process", self.database, str(self.port), *self.imports],
            cwd=str(PROJECT_ROOT),
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the ASGI server process exited with {self.process.returncode}") from None
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError("the ASGI server process did not start") from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the process dies without closing its sockets or cleaning up anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM, as a deploy stops a process; ``wait`` for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> int | None:
        """Wait until the process exits; its return code, or None if it still runs after ``timeout``."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def main() -> None:
    database, port, imports = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    import importlib

    import django
    from django.conf import settings

    # Before setup, so no connection is ever made to the database the settings name.
    settings.DATABASES["default"]["NAME"] = database
    django.setup()
    for module in imports:
        importlib.import_module(module)

    import uvicorn

    from apps.core.testing.asgi_server import uvicorn_config

    uvicorn.Server(uvicorn_config(host="127.0.0.1", port=port, lifespan="auto")).run()


if __name__ == "__main__":
    main()
