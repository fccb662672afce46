"""Tool-call ids: unique across processes, and cheap to compress.

A call's id travels in both frames of its round trip, each deflated on the way (per-message
deflate). 32 random hex digits cost zlib several times what the rest of a ``tool_call`` frame
does: every three-digit run is already in the window, so the match search walks long chains and
finds nothing worth keeping. An id made of a random prefix drawn once per process and a counter
compresses to a back-reference and a few literals, and keeps the shape clients know (32 lowercase
hex digits).

Uniqueness is what an id is for: the prefix (80 random bits, drawn again in a forked child) keeps
processes apart, the counter keeps a process's calls apart. That an id can be guessed does no harm:
only the socket a call went out on can answer it, and an answer nobody awaits is dropped.
"""

from __future__ import annotations

import itertools
import os

_prefix = ""
_counter = itertools.count()


def _draw_prefix() -> None:
    global _prefix, _counter
    _prefix = os.urandom(10).hex()
    _counter = itertools.count()


_draw_prefix()
os.register_at_fork(after_in_child=_draw_prefix)


def new_call_id() -> str:
    """A new tool-call id: this process's 20-digit prefix and a 12-digit counter, in hex."""
    return f"{_prefix}{next(_counter) & 0xFFFFFFFFFFFF:012x}"
