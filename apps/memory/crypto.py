"""Encryption of memory fields with the owner's key, and per-user HMAC digests for lookups."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable

from apps.accounts.keys import decrypt_for_user, encrypt_for_user, user_fernet_reader
from apps.accounts.models import User
from apps.core.errors import NotFoundError
from apps.core.fernet_reader import FernetReader

from .models import MemoryKey


def seal(*, user_id: uuid.UUID | str, text: str) -> bytes:
    try:
        return encrypt_for_user(user_id=user_id, plaintext=text)
    except User.DoesNotExist as exc:
        raise NotFoundError("User") from exc


def seal_optional(*, user_id: uuid.UUID | str, text: str | None) -> bytes | None:
    return None if text is None else seal(user_id=user_id, text=text)


def unseal(*, user_id: uuid.UUID | str, token: bytes | memoryview) -> str:
    return decrypt_for_user(user_id=user_id, token=bytes(token))


def unseal_optional(*, user_id: uuid.UUID | str, token: bytes | memoryview | None) -> str | None:
    return None if token is None else unseal(user_id=user_id, token=token)


class Unsealer:
    """``unseal`` for many tokens of one user (a page of items), in one thread: the user's key is
    looked up once, not per field of every item, and the tokens are opened by one ``FernetReader``,
    one by one or, after ``preload``, as one batch."""

    __slots__ = ("_opened", "_reader", "_user_id")

    def __init__(self, *, user_id: uuid.UUID | str, reader: FernetReader | None = None) -> None:
        # ``reader``: the user's, already made (``auser_fernet_reader`` on the event loop).
        self._user_id = user_id
        self._reader: FernetReader | None = reader
        self._opened: dict[bytes, str] = {}

    def _key_reader(self) -> FernetReader:
        # Looked up at the first token, as ``unseal`` would: nothing to open asks for no key.
        if self._reader is None:
            self._reader = user_fernet_reader(user_id=self._user_id)
        return self._reader

    def preload(self, tokens: Iterable[bytes | memoryview | None]) -> None:
        """Open ``tokens`` (None skipped) as one batch (``FernetReader.open_many``, about half the CPU
        of opening them one by one); calls with them then answer from it. A token the key refuses
        raises ``InvalidToken`` here, as its own call would."""
        sealed = [bytes(token) for token in tokens if token is not None]
        if sealed:
            texts = self._key_reader().open_many(sealed)
            self._opened.update(zip(sealed, (text.decode() for text in texts), strict=True))

    def __call__(self, token: bytes | memoryview) -> str:
        sealed = bytes(token)
        text = self._opened.get(sealed)
        return self._key_reader().open(sealed).decode() if text is None else text

    def optional(self, token: bytes | memoryview | None) -> str | None:
        return None if token is None else self(token)


def _hmac_key(*, user_id: uuid.UUID | str) -> bytes:
    # The HMAC key is random per user and stored under the user's Fernet key, so a digest can
    # only be recomputed (or brute-forced against short keys like "timezone") with the master keys.
    row = MemoryKey.objects.filter(user_id=user_id).first()
    if row is None:
        row, _ = MemoryKey.objects.get_or_create(
            user_id=user_id,
            defaults={"hmac_key_encrypted": seal(user_id=user_id, text=secrets.token_hex(32))},
        )
    return bytes.fromhex(unseal(user_id=user_id, token=row.hmac_key_encrypted))


def lookup_digest(*, user_id: uuid.UUID | str, text: str) -> bytes:
    """Deterministic, per-user digest of ``text`` for unique constraints and equality lookups."""
    return hmac.new(_hmac_key(user_id=user_id), text.encode(), hashlib.sha256).digest()
