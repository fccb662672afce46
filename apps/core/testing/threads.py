"""Race tests: the same callable started on several threads at once, waited for to the end."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(target: Callable[[], object], count: int) -> None:
    """Run ``target`` on ``count`` threads at once and wait for every one of them (each target
    closes its own database connection; a barrier inside it makes them meet)."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
