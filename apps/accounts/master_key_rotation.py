"""What is sealed under the server's master keys besides the per-user keys: higher apps register how
to re-encrypt theirs under the first key in ``AppConfig.ready``; ``rotate_master_keys`` runs them all."""

from __future__ import annotations

from collections.abc import Callable

# Given a batch size, re-encrypt every value under the first master key; returns how many were.
MasterKeyRotator = Callable[[int], int]

_rotators: dict[str, MasterKeyRotator] = {}


def register_master_key_rotator(name: str, rotator: MasterKeyRotator) -> None:
    _rotators[name] = rotator


def master_key_rotators() -> dict[str, MasterKeyRotator]:
    return dict(_rotators)
