"""Server master keys (``MultiFernet``): wrap and unwrap the per-user keys, rotate them; and the
Redis keys that seal what rests in or crosses Redis (stream logs, journey sessions)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
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


__all__ = ["InvalidToken", "master_fernet", "redis_seal", "redis_unseal", "rewrap_key", "unwrap_key", "wrap_key"]
