"""How channel-layer messages are sealed in Redis: msgpack, as channels-redis' own serializer, then
AES-GCM under per-process keys (``core.encryption.TransitSealer``) instead of a Fernet token.

A channel-layer message carries what a device sends and receives (``agent_data`` files, tool calls
and their results), so every file an agent run reads crosses it; a Fernet token of 10 KB cost ~50 µs
to seal and ~100 µs to open (base64, AES-CBC and HMAC), AES-GCM ~3 µs each.

Layout: the second it was sealed (8 bytes, big-endian, authenticated with the message), then the
sealed message. A message older than the layer's expiry plus 10 s is refused, as channels-redis asks
of Fernet tokens, and so is one stamped more than a minute ahead.

``CHANNEL_LAYER_SEAL = "fernet"`` seals as channels-redis does (what a process of the release before
this one reads), for a rolling deploy from it; both forms are always read.
"""

from __future__ import annotations

import time

from channels_redis.serializers import MsgPackSerializer, registry
from cryptography.fernet import InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.encryption import FERNET_TOKEN_PREFIX, TransitSealer

SERIALIZER_FORMAT = "adiuva-sealed-msgpack"

_LAYER_PURPOSE = b"adiuva-channel-layer:"
_STAMP_BYTES = 8
_MAX_CLOCK_SKEW = 60  # seconds, as Fernet allows


class LayerCrypter:
    """What channels-redis' serializer calls its ``crypter``: ``encrypt(data)`` and ``decrypt(token, ttl)``."""

    def __init__(self, keys: tuple[str, ...], fernet: MultiFernet) -> None:
        self._sealer = TransitSealer(keys, _LAYER_PURPOSE)
        self._fernet = fernet

    def encrypt(self, data: bytes) -> bytes:
        if settings.CHANNEL_LAYER_SEAL == "fernet":  # for processes of the previous release, during a roll
            return self._fernet.encrypt(data)
        stamp = int(time.time()).to_bytes(_STAMP_BYTES, "big")
        return stamp + self._sealer.seal(data, stamp)

    def decrypt(self, token: bytes, ttl: int | None = None) -> bytes:
        if token.startswith(FERNET_TOKEN_PREFIX):  # what channels-redis sealed (an earlier release)
            return self._fernet.decrypt(token, ttl)
        stamp = token[:_STAMP_BYTES]
        sealed_at, now = int.from_bytes(stamp, "big"), time.time()
        too_old = ttl is not None and sealed_at + ttl < now
        if len(stamp) < _STAMP_BYTES or too_old or sealed_at > now + _MAX_CLOCK_SKEW:
            raise InvalidToken
        return self._sealer.open(token[_STAMP_BYTES:], stamp)


class SealedMsgPackSerializer(MsgPackSerializer):
    """channels-redis' msgpack serializer with :class:`LayerCrypter` as its crypter (keys required)."""

    def _setup_encryption(self, symmetric_encryption_keys: list[str | bytes] | None) -> None:
        if not symmetric_encryption_keys or isinstance(symmetric_encryption_keys, str | bytes):
            raise ImproperlyConfigured("The channel layer needs symmetric_encryption_keys: a list of keys.")
        keys = tuple(key.decode() if isinstance(key, bytes) else key for key in symmetric_encryption_keys)
        self.crypter = LayerCrypter(keys, MultiFernet([self.make_fernet(key) for key in keys]))


registry.register_serializer(SERIALIZER_FORMAT, SealedMsgPackSerializer)
