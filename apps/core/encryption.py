"""Server master keys (``MultiFernet``): wrap and unwrap the per-user keys, rotate them."""

from __future__ import annotations

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


__all__ = ["InvalidToken", "master_fernet", "rewrap_key", "unwrap_key", "wrap_key"]
