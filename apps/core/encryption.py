"""Server master keys (``MultiFernet``): wrap and unwrap the per-user keys, rotate them; and the
Redis keys that seal what rests in or crosses Redis (stream logs, journey sessions, node messages)."""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# How a Fernet token begins: URL-safe base64 of its version byte 0x80 and a timestamp whose first bytes
# are zero until the year 10889. What a process of an earlier release sealed is told apart by it (the
# AES-GCM layouts start with a version or a stamp byte that base64 never gives first).
FERNET_TOKEN_PREFIX = b"gAAAAA"


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


# Messages that cross Redis without resting there for long (node pub/sub, channel-layer messages) are
# sealed with AES-GCM: an order of magnitude cheaper per message than a Fernet token (no base64, one
# primitive instead of AES-CBC plus HMAC), which matters on a tool call's round trip and on every file
# an agent run moves. Random 96-bit nonces bound a key to 2^32 messages (NIST SP 800-38D), so no key
# is used for long: each process draws a 16-byte salt (again after a fork, and after EPOCH_MESSAGES
# messages) and seals under HKDF(Redis key, salt); the salt travels in the message.
#   version 2: 0x02, salt (16), nonce (12), ciphertext with its tag (16)
#   version 1 (read only; what nodes sealed before per-process keys): 0x01, nonce, ciphertext + tag,
#   under the Redis key's transit key itself
_TRANSIT_V1 = b"\x01"
_TRANSIT_V2 = b"\x02"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_TAG_BYTES = 16
EPOCH_MESSAGES = 2**30
_OPENING_KEYS_KEPT = 1024  # salts (sending processes' epochs) whose keys a sealer keeps derived


class _Epoch:
    """This process's current sending key: a salt, its AES-GCM key and how many messages it may still seal."""

    __slots__ = ("aead", "header", "pid", "remaining")

    def __init__(self, base_key: bytes) -> None:
        salt = os.urandom(_SALT_BYTES)
        self.pid = os.getpid()
        self.header = _TRANSIT_V2 + salt
        self.aead = AESGCM(_epoch_key(base_key, salt))
        self.remaining = EPOCH_MESSAGES


def _epoch_key(base_key: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"adiuva-transit-epoch").derive(base_key)


class TransitSealer:
    """Seals and opens messages that cross Redis, under keys derived from ``keys`` (the first seals,
    every one opens: rotation) for ``purpose``, so each use of the Redis keys has keys of its own."""

    def __init__(self, keys: tuple[str, ...], purpose: bytes) -> None:
        if not keys:
            raise ImproperlyConfigured("REDIS_ENCRYPTION_KEYS must list at least one key.")
        self._base_keys = tuple(hashlib.sha256(purpose + key.encode()).digest() for key in keys)
        self._v1 = tuple(AESGCM(key) for key in self._base_keys)
        self._epoch = _Epoch(self._base_keys[0])
        self._opening: dict[bytes, tuple[AESGCM, ...]] = {}

    def seal(self, data: bytes, associated: bytes | None = None) -> bytes:
        epoch = self._epoch
        if epoch.remaining <= 0 or epoch.pid != os.getpid():
            epoch = self._epoch = _Epoch(self._base_keys[0])
        epoch.remaining -= 1
        nonce = os.urandom(_NONCE_BYTES)
        return epoch.header + nonce + epoch.aead.encrypt(nonce, data, associated)

    def open(self, sealed: bytes, associated: bytes | None = None) -> bytes:
        """The data of a sealed message (either version), under any of the keys; ``InvalidToken``
        if none opens it."""
        version, salt, known = sealed[:1], b"", None
        if version == _TRANSIT_V2 and len(sealed) >= 1 + _SALT_BYTES + _NONCE_BYTES + _TAG_BYTES:
            salt, rest = sealed[1 : 1 + _SALT_BYTES], sealed[1 + _SALT_BYTES :]
            known = self._opening.get(salt)
            aeads = known or tuple(AESGCM(_epoch_key(key, salt)) for key in self._base_keys)
        elif version == _TRANSIT_V1 and len(sealed) >= 1 + _NONCE_BYTES + _TAG_BYTES:
            rest, aeads = sealed[1:], self._v1
        else:
            raise InvalidToken
        nonce, body = rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]
        for aead in aeads:
            try:
                data = aead.decrypt(nonce, body, associated)
            except InvalidTag:
                continue
            if salt and known is None:
                self._keep(salt, aeads)
            return data
        raise InvalidToken

    def _keep(self, salt: bytes, aeads: tuple[AESGCM, ...]) -> None:
        # One derivation per sending process's epoch, not per message; only a salt whose message opened
        # is kept (a forged one costs its derivation and is forgotten), the oldest going first.
        if len(self._opening) >= _OPENING_KEYS_KEPT:
            self._opening.pop(next(iter(self._opening)), None)
        self._opening[salt] = aeads


_NODE_PURPOSE = b"adiuva-redis-transit:"


@lru_cache(maxsize=1)
def _node_sealer(keys: tuple[str, ...]) -> TransitSealer:
    return TransitSealer(keys, _NODE_PURPOSE)


def transit_seal(data: bytes) -> bytes:
    """``data`` sealed for a node message that crosses Redis and never rests there (AES-GCM under this
    process's key derived from the first Redis key)."""
    return _node_sealer(tuple(settings.REDIS_ENCRYPTION_KEYS)).seal(data)


def transit_unseal(sealed: bytes) -> bytes:
    """The data of a :func:`transit_seal` message, under any of the Redis keys (rotation);
    ``InvalidToken`` if none opens it."""
    return _node_sealer(tuple(settings.REDIS_ENCRYPTION_KEYS)).open(sealed)


__all__ = [
    "FERNET_TOKEN_PREFIX",
    "InvalidToken",
    "TransitSealer",
    "master_fernet",
    "redis_seal",
    "redis_unseal",
    "rewrap_key",
    "transit_seal",
    "transit_unseal",
    "unwrap_key",
    "wrap_key",
]
