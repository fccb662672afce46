"""Per-user Fernet keys: created at registration, wrapped by the master keys, never a plain field.

Memory, OAuth tokens and other per-user secrets encrypt with ``user_fernet(user_id=...)``.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import NamedTuple

from asgiref.sync import sync_to_async
from cryptography.fernet import Fernet
from django.utils import timezone

from apps.core.encryption import rewrap_key, unwrap_key
from apps.core.fernet_reader import FernetReader

from .master_key_rotation import rows_resealed
from .models import User, UserKey


def user_key_create(*, user: User) -> None:
    """Give ``user`` a fresh key unless they already have one (``UserManager`` does so for every user
    it creates)."""
    UserKey.objects.ensure_for(user)


class _UserKey(NamedTuple):
    fernet: Fernet
    key: bytes  # the unwrapped key, for readers of many tokens (``user_fernet_reader``)


class _KeysInMemory:
    """The users' keys this process has opened, the least recently used dropped past ``size``
    (``functools.lru_cache``'s policy), with a look (``get``) that never queries: code on the event
    loop asks here first and goes to the thread only for a key not held."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[uuid.UUID, _UserKey] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: uuid.UUID) -> _UserKey | None:
        with self._lock:
            key = self._keys.get(user_id)
            if key is not None:
                self._keys.move_to_end(user_id)
            return key

    def put(self, user_id: uuid.UUID, key: _UserKey) -> None:
        with self._lock:
            self._keys[user_id] = key
            self._keys.move_to_end(user_id)
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


_KEYS = _KeysInMemory(size=4096)


def user_keys_forget() -> None:
    """Drop every key this process holds in memory, and every thread's readers made from them (tests;
    each is looked up again when next used)."""
    global _readers_generation
    _KEYS.clear()
    _readers_generation += 1  # each thread drops its readers at its next look (``_thread_reader``)


def _key_of(user_id: uuid.UUID) -> _UserKey:
    """The user's key: from memory, else from its row (then kept)."""
    key = _KEYS.get(user_id)
    if key is not None:
        return key
    try:
        key = _stored(user_id)
    except UserKey.DoesNotExist:
        # A user without a key row (made before keys existed) gets one now. Not kept in memory: the
        # row is written in the caller's transaction, and a rollback would leave this process sealing
        # with a key no other process can read. Once committed, the next call reads and keeps it.
        UserKey.objects.ensure_for(User.objects.get(id=user_id))
        return _stored(user_id)
    _KEYS.put(user_id, key)
    return key


def _stored(user_id: uuid.UUID) -> _UserKey:
    """The user's key row, unwrapped; ``UserKey.DoesNotExist`` when there is none."""
    key = unwrap_key(bytes(UserKey.objects.values_list("wrapped_key", flat=True).get(user_id=user_id)))
    return _UserKey(Fernet(key), key)


def user_fernet(*, user_id: uuid.UUID | str) -> Fernet:
    """The user's own Fernet; the unwrapped key lives only in this process's memory."""
    return _key_of(uuid.UUID(str(user_id))).fernet


def user_fernet_reader(*, user_id: uuid.UUID | str) -> FernetReader:
    """A reader of the user's tokens for a batch (a page of items): what ``user_fernet().decrypt``
    opens, at less than half the CPU per token. This thread's own (``_thread_reader``)."""
    return _thread_reader(_key_of(uuid.UUID(str(user_id))).key)


async def auser_fernet_reader(*, user_id: uuid.UUID | str) -> FernetReader:
    """``user_fernet_reader`` for code on the event loop: a key in memory (nearly always) is read
    there; one not looked up yet is looked up in the thread, never on the loop."""
    user_uuid = uuid.UUID(str(user_id))
    key = _KEYS.get(user_uuid) or await sync_to_async(_key_of)(user_uuid)
    return _thread_reader(key.key)


# Readers by key, per thread: a reader's AES context must not be used by two threads at once, and
# making one (its key's HMAC states and AES context) cost as much as opening three tokens.
_readers = threading.local()
_READERS_PER_THREAD = 256
_readers_generation = 0  # moved on by ``user_keys_forget``


def _thread_reader(key: bytes) -> FernetReader:
    """This thread's reader of ``key`` (the oldest made dropped past ``_READERS_PER_THREAD``)."""
    readers: dict[bytes, FernetReader] | None = getattr(_readers, "by_key", None)
    if readers is None or _readers.generation != _readers_generation:
        readers = _readers.by_key = {}
        _readers.generation = _readers_generation
    reader = readers.get(key)
    if reader is None:
        if len(readers) >= _READERS_PER_THREAD:
            del readers[next(iter(readers))]
        reader = readers[key] = FernetReader(key)
    return reader


def encrypt_for_user(*, user_id: uuid.UUID | str, plaintext: str) -> bytes:
    return user_fernet(user_id=user_id).encrypt(plaintext.encode())


def decrypt_for_user(*, user_id: uuid.UUID | str, token: bytes) -> str:
    return user_fernet(user_id=user_id).decrypt(bytes(token)).decode()


def user_keys_rewrap(*, batch_size: int = 500) -> int:
    """Re-wrap every user key under the first master key; returns how many were rewritten."""
    now = timezone.now()

    def rewrap(row: UserKey) -> None:
        row.wrapped_key = rewrap_key(bytes(row.wrapped_key))
        row.rotated_at = now

    return rows_resealed(
        model=UserKey, key="user_id", reseal=rewrap, fields=["wrapped_key", "rotated_at"], batch_size=batch_size
    )
