"""An object made once per process from a setting, made again when that setting is replaced.

Django's ``connections`` and ``caches`` are local to a request's context under ASGI, so what code on
the event loop asks of them (a database wrapper for value conversions, a cache backend for its key
form) was made anew for every request. A ``PerSettings`` keeps one per alias instead, and makes a
new one when the alias's settings object is another (a test's ``override_settings``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerSettings(Generic[T]):
    """``make(alias)``, kept per alias while ``settings_of(alias)`` is the object it was made from."""

    def __init__(self, *, settings_of: Callable[[str], object], make: Callable[[str], T]) -> None:
        self._settings_of = settings_of
        self._make = make
        self._made: dict[str, tuple[object, T]] = {}

    def __call__(self, alias: str = "default") -> T:
        config = self._settings_of(alias)
        known = self._made.get(alias)
        if known is not None and known[0] is config:
            return known[1]
        made = self._make(alias)
        self._made[alias] = (config, made)
        return made
