"""Decoding of what clients send inside JSON bodies (base64 blobs), with the record size cap."""

from __future__ import annotations

import base64
import binascii

from django.conf import settings

from apps.core.errors import ApplicationError

from .error_codes import StorageErrorCode


def blob_decode(*, value: str, field: str = "blob") -> bytes:
    """Strict standard base64 (the client's encoding); anything else is a 400, not a guess."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ApplicationError(
            StorageErrorCode.INVALID_BLOB,
            f"'{field}' must be standard base64.",
            fields={field: ["Not valid base64."]},
        ) from None
    limit = settings.STORAGE_RECORD_MAX_BYTES
    if len(data) > limit:
        raise ApplicationError(
            StorageErrorCode.BLOB_TOO_LARGE,
            f"'{field}' is {len(data)} bytes; the limit is {limit}.",
            status=413,
            fields={field: [f"At most {limit} bytes."]},
        )
    return data
