"""Semantic versions (semver.org 2.0.0): strict parsing and precedence, no third-party package."""

from __future__ import annotations

import re
from functools import total_ordering

# The regular expression published on semver.org, anchored.
SEMVER_PATTERN = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@total_ordering
class SemVer:
    """A parsed version; compares by semver precedence (build metadata is ignored)."""

    __slots__ = ("major", "minor", "patch", "prerelease", "text")

    def __init__(self, text: str) -> None:
        match = SEMVER_PATTERN.match(text) if isinstance(text, str) and len(text) <= 64 else None
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build]).")
        self.text = text
        self.major, self.minor, self.patch = (int(part) for part in match.group(1, 2, 3))
        self.prerelease: tuple[str, ...] = tuple(match.group(4).split(".")) if match.group(4) else ()

    def _key(self) -> tuple:
        # A release outranks its pre-releases; numeric identifiers sort below alphanumeric ones.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text


def is_semver(text: str) -> bool:
    try:
        SemVer(text)
    except ValueError:
        return False
    return True
