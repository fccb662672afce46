"""The two kinds of chat: the home screen's and the floating window's (its own supervisor graph,
scope and domain announcement)."""

from __future__ import annotations

from enum import StrEnum


class ChatKind(StrEnum):
    HOME = "home"
    FLOATING = "floating"
