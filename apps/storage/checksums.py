"""SHA-256 checksums of client ciphertext: format checks and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import re

from apps.core.errors import ApplicationError

from .error_codes import StorageErrorCode

SHA256_HEX_PATTERN = r"^[0-9a-fA-F]{64}$"
_HEX_SHA256 = re.compile(SHA256_HEX_PATTERN)


def checksum_normalize(value: str, *, field: str = "checksum") -> str:
    """A 64-character hex SHA-256, lower-cased; anything else is a 400."""
    if not isinstance(value, str) or not _HEX_SHA256.match(value):
        raise ApplicationError(
            StorageErrorCode.INVALID_CHECKSUM,
            f"'{field}' must be the hex SHA-256 of the blob (64 hex characters).",
            fields={field: ["Expected 64 hex characters."]},
        )
    return value.lower()


def checksum_matches(*, computed_hex: str, expected_hex: str) -> bool:
    # Constant time, so a caller probing checksums learns nothing from the response time.
    return hmac.compare_digest(computed_hex.encode(), expected_hex.lower().encode())


def checksum_verify(*, data: bytes, expected_hex: str, field: str = "checksum") -> None:
    """Raise a 400 unless ``data`` hashes to ``expected_hex``; nothing is stored before this passes."""
    if not checksum_matches(computed_hex=hashlib.sha256(data).hexdigest(), expected_hex=expected_hex):
        raise ApplicationError(
            StorageErrorCode.CHECKSUM_MISMATCH,
            "The blob does not match its SHA-256 checksum; nothing was stored.",
            fields={field: ["Does not match the SHA-256 of the blob."]},
        )
