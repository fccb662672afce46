"""What is sealed under the server's master keys besides the per-user keys: higher apps register how
to re-encrypt theirs under the first key in ``AppConfig.ready``; ``rotate_master_keys`` runs them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models, transaction

# Given a batch size, re-encrypt every value under the first master key; returns how many were.
MasterKeyRotator = Callable[[int], int]

_rotators: dict[str, MasterKeyRotator] = {}


def register_master_key_rotator(name: str, rotator: MasterKeyRotator) -> None:
    _rotators[name] = rotator


def master_key_rotators() -> dict[str, MasterKeyRotator]:
    return dict(_rotators)


def rows_resealed(
    *, model: type[models.Model], key: str, reseal: Callable[[Any], None], fields: list[str], batch_size: int
) -> int:
    """Re-seal every row of ``model`` a batch at a time, in ``key`` order: each batch is locked,
    changed by ``reseal`` and written back in its own transaction, so a large table never holds one
    long lock. Returns how many rows were."""
    done = 0
    last = None
    while True:
        with transaction.atomic():
            rows = model._default_manager.select_for_update().order_by(key)
            if last is not None:
                rows = rows.filter(**{f"{key}__gt": last})
            batch = list(rows[:batch_size])
            if not batch:
                return done
            for row in batch:
                reseal(row)
            model._default_manager.bulk_update(batch, fields)
            done += len(batch)
            last = getattr(batch[-1], key)
