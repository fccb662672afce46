"""The socket database threads: one pool per size of DEVICE_DB_THREADS, its size kept by us, not
read back from the pool's private attribute."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.devices import socket_db


class SizeKeptPrivate(ThreadPoolExecutor):
    """A pool whose size only the pool's own module can read, as a later Python may rename it."""

    @property
    def _max_workers(self) -> int:
        if sys._getframe(1).f_globals.get("__name__") != "concurrent.futures.thread":
            raise AttributeError("_max_workers is the pool's own")
        return self.__dict__["size"]

    @_max_workers.setter
    def _max_workers(self, size: int) -> None:
        self.__dict__["size"] = size


@pytest.fixture
def fresh_pool(monkeypatch):
    monkeypatch.setattr(socket_db, "ThreadPoolExecutor", SizeKeptPrivate)
    monkeypatch.setattr(socket_db, "_executor", None)
    yield
    if socket_db._executor is not None:
        socket_db._executor.shutdown(wait=False)


def test_the_pool_is_kept_while_its_size_holds_and_replaced_when_it_changes(fresh_pool, settings):
    # given the pool made for three threads
    settings.DEVICE_DB_THREADS = 3
    first = socket_db._pool()

    # then it is the pool of every call while the setting holds, and runs work
    assert socket_db._pool() is first
    assert first.submit(lambda: 7).result(timeout=5) == 7

    # and a changed setting brings a pool of the new size in its place
    settings.DEVICE_DB_THREADS = 5
    second = socket_db._pool()
    assert second is not first
    assert second.__dict__["size"] == 5
    assert socket_db._pool() is second
    assert second.submit(lambda: 8).result(timeout=5) == 8
