"""Writes of vector items: an encrypted blob per item plus an optional plaintext vector to search."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.billing.tiers import Feature, require_feature
from apps.core.errors import ApplicationError

from .checksums import checksum_normalize, checksum_verify
from .error_codes import StorageErrorCode
from .lock_objects import user_quota_lock
from .models import VECTOR_DIMENSIONS, VectorItem
from .quotas import storage_room_require


@dataclass(frozen=True)
class VectorInput:
    item_id: str
    blob: bytes
    checksum: str
    vector: list[float] | None = None


FLOAT32_MAX = 3.4028234663852886e38


def vector_validate(*, vector: list[float] | None, field: str) -> list[float] | None:
    if vector is None:
        return None
    # pgvector stores float32: a larger magnitude would fail in the database instead of here.
    if len(vector) != VECTOR_DIMENSIONS or not all(
        math.isfinite(value) and abs(value) <= FLOAT32_MAX for value in vector
    ):
        raise ApplicationError(
            StorageErrorCode.INVALID_VECTOR,
            f"'{field}' must hold {VECTOR_DIMENSIONS} finite float32 numbers (|x| <= {FLOAT32_MAX:.7g}).",
            fields={field: [f"Expected {VECTOR_DIMENSIONS} finite float32 numbers."]},
        )
    if not any(vector):
        raise ApplicationError(
            StorageErrorCode.INVALID_VECTOR,
            f"'{field}' is all zeros; cosine similarity is undefined for it.",
            fields={field: ["Must not be the zero vector."]},
        )
    return vector


def vector_items_upsert(*, user: Any, items: list[VectorInput]) -> int:
    require_feature(user, Feature.CLOUD_STORAGE_GB)
    verified = []
    for index, item in enumerate(items):
        checksum = checksum_normalize(item.checksum, field=f"vectors.{index}.checksum")
        checksum_verify(data=item.blob, expected_hex=checksum, field=f"vectors.{index}.checksum")
        vector = vector_validate(vector=item.vector, field=f"vectors.{index}.vector")
        verified.append(VectorInput(item_id=item.item_id, blob=item.blob, checksum=checksum, vector=vector))
    latest = {item.item_id: item for item in verified}  # the last of a repeated id wins

    with transaction.atomic():
        user_quota_lock(user_id=user.id, scope="storage")
        existing = {
            item.item_id: item
            for item in VectorItem.objects.select_for_update().filter(user=user, item_id__in=list(latest))
        }
        releasing = sum(item.size_bytes for item in existing.values())
        storage_room_require(user=user, incoming=sum(len(i.blob) for i in latest.values()), releasing=releasing)
        now = timezone.now()
        to_create, to_update = [], []
        for item_id, item in latest.items():
            row = existing.get(item_id)
            if row is None:
                to_create.append(
                    VectorItem(
                        user=user,
                        item_id=item_id,
                        blob=item.blob,
                        checksum=item.checksum,
                        size_bytes=len(item.blob),
                        vector=item.vector,
                    )
                )
            else:
                row.blob, row.checksum, row.size_bytes, row.vector = (
                    item.blob,
                    item.checksum,
                    len(item.blob),
                    item.vector,
                )
                row.updated_at = now
                to_update.append(row)
        VectorItem.objects.bulk_create(to_create)
        VectorItem.objects.bulk_update(to_update, ["blob", "checksum", "size_bytes", "vector", "updated_at"])
    return len(latest)


def vector_items_delete(*, user: Any, item_ids: list[str]) -> int:
    deleted, _ = VectorItem.objects.filter(user=user, item_id__in=item_ids).delete()
    return deleted
