"""Server master keys (``MultiFernet``): wrap and unwrap the per-user keys, rotate them; and the
Redis keys that seal what rests in or crosses Redis (stream logs, journey sessions, node messages)."""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=1)
def _master(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FERNET_MASTER_KEYS must list at least one Fernet key.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("FERNET_MASTER_KEYS holds a key that is not a Fernet key.") from exc


def master_fernet() -> MultiFernet:
    """The first key encrypts; every key decrypts, so old keys can stay listed during rotation."""
    return _master(tuple(settings.FERNET_MASTER_KEYS))


def wrap_key(raw_key: bytes) -> bytes:
    return master_fernet().encrypt(raw_key)


def unwrap_key(wrapped: bytes) -> bytes:
    return master_fernet().decrypt(wrapped)


def rewrap_key(wrapped: bytes) -> bytes:
    """Re-encrypt under the current first master key (``MultiFernet.rotate``)."""
    return master_fernet().rotate(wrapped)


# Each REDIS_ENCRYPTION_KEYS entry is hashed with this purpose into a Fernet key, so the entries given
# to channels-redis (which hashes them bare) never encrypt the app's own Redis values too.
_REDIS_PURPOSE = b"adiuva-redis-values:"


@lru_cache(maxsize=1)
def _redis(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("REDIS_ENCRYPTION_KEYS must list at least one key.")
    return MultiFernet(
        [Fernet(base64.urlsafe_b64encode(hashlib.sha256(_REDIS_PURPOSE + key.encode()).digest())) for key in keys]
    )


def redis_seal(text: str) -> str:
    """``text`` as a Fernet token (ASCII), for a value that rests in Redis."""
    return _redis(tuple(settings.REDIS_ENCRYPTION_KEYS)).encrypt(text.encode()).decode("ascii")


def redis_unseal(token: str | bytes) -> str:
    """The text of a :func:`redis_seal` token; ``InvalidToken`` if it was not sealed with these keys."""
    raw = token.encode("ascii") if isinstance(token, str) else bytes(token)
    return _redis(tuple(settings.REDIS_ENCRYPTION_KEYS)).decrypt(raw).decode()


# Messages that only cross Redis (pub/sub, never stored) are sealed with AES-GCM under keys derived
# from the same entries for this purpose: an order of magnitude cheaper per message than a Fernet
# token (no base64, one primitive instead of AES-CBC plus HMAC), which matters on a tool call's
# round trip. Layout: version byte, 12-byte nonce, ciphertext with its tag.
_TRANSIT_PURPOSE = b"adiuva-redis-transit:"
_TRANSIT_VERSION = b"\x01"
_NONCE_BYTES = 12


@lru_cache(maxsize=1)
def _transit(keys: tuple[str, ...]) -> tuple[AESGCM, ...]:
    if not keys:
        raise ImproperlyConfigured("REDIS_ENCRYPTION_KEYS must list at least one key.")
    return tuple(AESGCM(hashlib.sha256(_TRANSIT_PURPOSE + key.encode()).digest()) for key in keys)


def transit_seal(data: bytes) -> bytes:
    """``data`` sealed (AES-GCM, the first Redis key) for a message that crosses Redis, never rests."""
    nonce = os.urandom(_NONCE_BYTES)
    return _TRANSIT_VERSION + nonce + _transit(tuple(settings.REDIS_ENCRYPTION_KEYS))[0].encrypt(nonce, data, None)


def transit_unseal(sealed: bytes) -> bytes:
    """The data of a :func:`transit_seal` message, under any of the Redis keys (rotation);
    ``InvalidToken`` if none opens it."""
    if sealed[:1] != _TRANSIT_VERSION or len(sealed) < 1 + _NONCE_BYTES + 16:  # 16: the GCM tag
        raise InvalidToken
    nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    for aead in _transit(tuple(settings.REDIS_ENCRYPTION_KEYS)):
        try:
            return aead.decrypt(nonce, body, None)
        except InvalidTag:
            continue
    raise InvalidToken


__all__ = [
    "InvalidToken",
    "master_fernet",
    "redis_seal",
    "redis_unseal",
    "rewrap_key",
    "transit_seal",
    "transit_unseal",
    "unwrap_key",
    "wrap_key",
]
