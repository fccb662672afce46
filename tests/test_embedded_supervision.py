"""Under `make run` a killed embedded Redis is restarted by the supervisor (in a private data directory)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import os, signal, threading, time
    from adiuva import embedded

    embedded.start_redis()
    os.environ[embedded.EMBEDDED_SERVICES_VAR] = "redis"
    stop = threading.Event()
    threading.Thread(target=embedded.supervise_embedded_services, kwargs={"stop": stop, "interval": 0.2}).start()
    try:
        pid = int((embedded._redis_dir() / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, "redis was not restarted"
            pid_file = embedded._redis_dir() / "redis.pid"
            new_pid = int(pid_file.read_text() or 0) if pid_file.exists() else 0
            if new_pid and new_pid != pid and embedded._redis_ping():
                break
            time.sleep(0.1)
        print("restarted")
    finally:
        stop.set()
        embedded.stop_redis()
    """
)


def test_a_killed_embedded_redis_is_restarted(tmp_path):
    # given an embedded Redis in its own data directory (never the shared one), watched by the supervisor
    env = {**os.environ, "ADIUVA_DATA_DIR": str(tmp_path)}

    # when it is killed with SIGKILL
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    # then the supervisor brings it back on the same socket
    assert result.returncode == 0, result.stderr
    assert "restarted" in result.stdout
