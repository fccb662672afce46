"""Removes system-prompt text from everything the assistant sends, even when the model echoes it.

Every prose fragment of the prompts is cut into overlapping windows of ``SHINGLE_WORDS``
words (lower-cased, punctuation ignored). Any run of output words that reproduces one of
those windows is removed, so reformatting, markdown or changed punctuation do not hide a
leak, while ordinary answers (which share at most a few words in a row with the prompt)
pass untouched. :class:`StreamSanitizer` does the same over a stream by holding back a tail
long enough that a leak split across chunks is still caught before any of it is sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache

from .prompts import ALL_FRAGMENTS

logger = logging.getLogger(__name__)

SHINGLE_WORDS = 8
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


@lru_cache(maxsize=1)
def _default_fingerprints() -> tuple[frozenset[tuple[str, ...]], int]:
    return fingerprints_of(fragment.prose for fragment in ALL_FRAGMENTS)


def fingerprints_of(texts: Iterable[str]) -> tuple[frozenset[tuple[str, ...]], int]:
    """The set of word windows of ``texts`` and the longest window in characters."""
    shingles: set[tuple[str, ...]] = set()
    longest = 0
    for text in texts:
        matches = list(_WORD.finditer(text))
        for i in range(len(matches) - SHINGLE_WORDS + 1):
            window = matches[i : i + SHINGLE_WORDS]
            shingles.add(tuple(m.group().lower() for m in window))
            longest = max(longest, window[-1].end() - window[0].start())
    return frozenset(shingles), longest


def _leaked_spans(text: str, shingles: frozenset[tuple[str, ...]]) -> list[tuple[int, int]]:
    matches = list(_WORD.finditer(text))
    spans: list[tuple[int, int]] = []
    for i in range(len(matches) - SHINGLE_WORDS + 1):
        window = matches[i : i + SHINGLE_WORDS]
        if tuple(m.group().lower() for m in window) in shingles:
            start, end = window[0].start(), window[-1].end()
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
    return spans


def _redact(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        # Swallow the punctuation that trails the leaked words (". ", "…"): it belongs to the leak.
        while end < len(text) and not text[end].isspace() and not text[end].isalnum() and text[end] not in "<[":
            end += 1
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


class PromptSanitizer:
    """Redacts prompt fingerprints; ``extra_texts`` adds per-request prompt text (scope, memory header)."""

    def __init__(self, extra_texts: Iterable[str] = ()) -> None:
        shingles, longest = _default_fingerprints()
        extra = list(extra_texts)
        if extra:
            more, more_longest = fingerprints_of(extra)
            shingles, longest = shingles | more, max(longest, more_longest)
        self.shingles = shingles
        self.longest = longest
        self.redactions = 0

    def clean(self, text: str) -> str:
        spans = _leaked_spans(text, self.shingles)
        if spans:
            self.redactions += len(spans)
            logger.warning("sanitizer removed %d prompt fragment(s) from assistant output", len(spans))
        return _redact(text, spans)


class StreamSanitizer:
    """Feed chunks in, get safe text out; ``flush()`` at the end releases the held-back tail."""

    def __init__(self, sanitizer: PromptSanitizer | None = None) -> None:
        self.sanitizer = sanitizer or PromptSanitizer()
        # A leaked window can be spread by extra spaces or markdown; twice the longest is generous.
        self.hold_back = 2 * self.sanitizer.longest + 16
        self._pending = ""

    def feed(self, chunk: str) -> str:
        # The raw text is kept until released, so a leak that is still arriving keeps matching.
        self._pending += chunk
        if len(self._pending) <= self.hold_back:
            return ""
        cut = len(self._pending) - self.hold_back
        # Release up to a word boundary so a word is never split across the kept tail.
        cut = max(self._pending.rfind(" ", 0, cut), self._pending.rfind("\n", 0, cut)) + 1
        spans = _leaked_spans(self._pending, self.sanitizer.shingles)
        for start, end in spans:
            if start < cut < end + 1:
                cut = start  # never release half of a leak
        if cut <= 0:
            return ""
        head = [(start, end) for start, end in spans if end <= cut]
        released, self._pending = self._pending[:cut], self._pending[cut:]
        if head:
            self.sanitizer.redactions += len(head)
            logger.warning("sanitizer removed %d prompt fragment(s) from streamed output", len(head))
        return _redact(released, head)

    def flush(self) -> str:
        released, self._pending = self.sanitizer.clean(self._pending), ""
        return released

    @property
    def redactions(self) -> int:
        return self.sanitizer.redactions
