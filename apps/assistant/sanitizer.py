"""Removes system-prompt text from everything the assistant sends, even when the model echoes it.

Every prose fragment of the prompts is cut into overlapping windows of ``SHINGLE_WORDS``
words (lower-cased, punctuation ignored). Any run of output words that reproduces one of
those windows is removed, so reformatting, markdown or changed punctuation do not hide a
leak, while ordinary answers (which share at most a few words in a row with the prompt)
pass untouched.

:class:`StreamSanitizer` does the same over a stream without a fixed delay: a prefix index of
the windows tells which tail of the text could still be the start of a window, and only that
tail is held back; everything before it leaves at once.
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


class PromptIndex:
    """The prompt's word windows and, for every proper prefix of one, the words that may follow it.

    ``follow[()]`` are the first words of all windows; ``root_word_prefixes`` holds every string
    prefix of those, so a half-streamed word can be tested in one lookup.
    """

    def __init__(self, shingles: Iterable[tuple[str, ...]], longest: int) -> None:
        self.shingles = frozenset(shingles)
        self.longest = longest
        follow: dict[tuple[str, ...], set[str]] = {}
        for shingle in self.shingles:
            for size in range(SHINGLE_WORDS):
                follow.setdefault(shingle[:size], set()).add(shingle[size])
        self.follow = {prefix: frozenset(words) for prefix, words in follow.items()}
        self.root_word_prefixes = frozenset(
            word[:i] for word in self.follow.get((), ()) for i in range(1, len(word) + 1)
        )

    def could_begin_window(self, words: tuple[str, ...], partial: str | None) -> bool:
        """Whether ``words`` (complete) followed by ``partial`` (a word still growing) can still
        become the start of a prompt window once more text arrives."""
        if len(words) >= SHINGLE_WORDS:
            return False
        nexts = self.follow.get(words)
        if nexts is None:
            return False
        if partial is None:
            return bool(words)  # an empty tail holds nothing back
        if not words:
            return partial in self.root_word_prefixes
        return any(word.startswith(partial) for word in nexts)

    def union(self, other: PromptIndex) -> PromptIndex:
        return PromptIndex(self.shingles | other.shingles, max(self.longest, other.longest))


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


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


@lru_cache(maxsize=1)
def _default_index() -> PromptIndex:
    return PromptIndex(*fingerprints_of(fragment.prose for fragment in ALL_FRAGMENTS))


def _spans_of(matches: list[re.Match], shingles: frozenset[tuple[str, ...]]) -> list[tuple[int, int]]:
    """Character spans of ``matches`` (word matches) covered by windows found in ``shingles``."""
    spans: list[tuple[int, int]] = []
    lowered = [m.group().lower() for m in matches]
    for i in range(len(matches) - SHINGLE_WORDS + 1):
        if tuple(lowered[i : i + SHINGLE_WORDS]) in shingles:
            start, end = matches[i].start(), matches[i + SHINGLE_WORDS - 1].end()
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
    return spans


def _leaked_spans(text: str, shingles: frozenset[tuple[str, ...]]) -> list[tuple[int, int]]:
    return _spans_of(list(_WORD.finditer(text)), shingles)


def _swallow_end(text: str, end: int) -> int:
    # The punctuation that trails the leaked words (". ", "…") belongs to the leak.
    while end < len(text) and not text[end].isspace() and not text[end].isalnum() and text[end] not in "<[":
        end += 1
    return end


def _redact(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        cursor = _swallow_end(text, end)
    pieces.append(text[cursor:])
    return "".join(pieces)


class PromptSanitizer:
    """Redacts prompt fingerprints; ``extra_texts`` adds per-request prompt text (scope, memory header)."""

    def __init__(self, extra_texts: Iterable[str] = ()) -> None:
        index = _default_index()
        extra = list(extra_texts)
        if extra:
            index = index.union(PromptIndex(*fingerprints_of(extra)))
        self.index = index
        self.shingles = index.shingles
        self.longest = index.longest
        self.redactions = 0

    def clean(self, text: str) -> str:
        spans = _leaked_spans(text, self.shingles)
        if spans:
            self.redactions += len(spans)
            logger.warning("sanitizer removed %d prompt fragment(s) from assistant output", len(spans))
        return _redact(text, spans)


class StreamSanitizer:
    """Feed chunks in, get safe text out at once; ``flush()`` at the end releases the held tail.

    Held back is only the tail that could still grow into a prompt window (its words are a
    prefix of one, the last word possibly half-streamed) and a leak still being removed.
    """

    def __init__(self, sanitizer: PromptSanitizer | None = None) -> None:
        self.sanitizer = sanitizer or PromptSanitizer()
        self._pending = ""

    @property
    def held(self) -> str:
        """The text received but not yet released."""
        return self._pending

    def feed(self, chunk: str) -> str:
        # The raw text is kept until released, so a leak that is still arriving keeps matching.
        self._pending += chunk
        text = self._pending
        matches = list(_WORD.finditer(text))
        partial = matches.pop() if matches and matches[-1].end() == len(text) else None
        cut = self._safe_cut(text, matches, partial)
        spans = _spans_of(matches, self.sanitizer.shingles)
        for start, end in spans:
            if start < cut and (end > cut or _swallow_end(text, end) >= len(text)):
                cut = start  # never release half of a leak, nor a leak whose trailing punctuation may follow
                break
        if cut <= 0:
            return ""
        head = [(start, end) for start, end in spans if end <= cut]
        released, self._pending = text[:cut], text[cut:]
        if head:
            self.sanitizer.redactions += len(head)
            logger.warning("sanitizer removed %d prompt fragment(s) from streamed output", len(head))
        return _redact(released, head)

    def _safe_cut(self, text: str, matches: list[re.Match], partial: re.Match | None) -> int:
        """Where the earliest tail that could still begin a prompt window starts (or the end)."""
        index = self.sanitizer.index
        words = tuple(m.group().lower() for m in matches)
        growing = partial.group().lower() if partial is not None else None
        n = len(words)
        for j in range(max(0, n - SHINGLE_WORDS + 1), n + 1):
            if index.could_begin_window(words[j:], growing):
                return matches[j].start() if j < n else partial.start()  # type: ignore[union-attr]
        return len(text)

    def flush(self) -> str:
        released, self._pending = self.sanitizer.clean(self._pending), ""
        return released

    @property
    def redactions(self) -> int:
        return self.sanitizer.redactions
