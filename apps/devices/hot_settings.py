"""Settings the device socket reads on every frame or tool call, read once and kept.

A read through ``django.conf.settings`` costs about a microsecond (its lazy object's
``__getattribute__``), and a tool call's round trip read several. Kept values are dropped whenever
any setting changes (Django's ``setting_changed``, which ``override_settings`` and pytest-django's
``settings`` fixture send), so an override is seen by the next read.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

_kept: dict[str, Any] = {}
# Counts the changes: a value read while one happened (a socket's thread beside a test's override)
# is used but not kept, so it cannot outlive the change.
_changes = 0


def hot_setting(name: str) -> Any:
    """``getattr(settings, name)``, kept until a setting changes."""
    try:
        return _kept[name]
    except KeyError:
        changes = _changes
        value = getattr(settings, name)
        if changes == _changes:
            _kept[name] = value
        return value


def _forget(**_kwargs: Any) -> None:
    global _changes
    _changes += 1
    _kept.clear()


setting_changed.connect(_forget, dispatch_uid="apps.devices.hot_settings")
