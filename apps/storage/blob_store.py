"""Access to the ``blobs`` storage (S3 or filesystem) and a hashing reader for streamed uploads.

Keys are fresh per write (``<kind>/<user>/<uuid>``) so a write never overwrites bytes another row
still points at; a failed write leaves only an orphan key, which the caller deletes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from apps.core.errors import ApplicationError

from .error_codes import StorageErrorCode

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024


def blob_storage() -> Storage:
    return storages["blobs"]


def blob_storage_is_s3() -> bool:
    from storages.backends.s3 import S3Storage

    return isinstance(blob_storage(), S3Storage)


def s3_storage() -> Any:
    """The blob storage where it is S3 (callers check ``blob_storage_is_s3``); django-storages has no types."""
    return blob_storage()


def blob_new_key(*, kind: str, user_id: Any) -> str:
    return f"{kind}/{user_id}/{uuid.uuid4().hex}"


def blob_write_bytes(*, key: str, data: bytes) -> str:
    return blob_storage().save(key, ContentFile(data))


def blob_open(*, key: str) -> File:
    """Open a blob for reading; bytes gone from storage are a clear 404, not a 500."""
    try:
        return blob_storage().open(key, "rb")
    except FileNotFoundError as exc:
        logger.error("storage: blob %s is referenced but missing", key)
        raise ApplicationError(
            StorageErrorCode.BLOB_MISSING,
            "The stored bytes of this item are missing; upload it again.",
            status=404,
        ) from exc


def blob_read_bytes(*, key: str) -> bytes:
    with blob_open(key=key) as handle:
        return handle.read()


# A blob on local disk up to this size is read on the event loop: a read from the page cache costs a
# few microseconds, the trip to the request's thread and back hundreds (bench/rest_per_process.py).
LOOP_READ_MAX_BYTES = 64 * 1024


async def ablob_read_bytes(*, key: str, size: int) -> bytes:
    """``blob_read_bytes`` awaited. A blob of at most ``LOOP_READ_MAX_BYTES`` (``size``, as recorded)
    in the local directory is read on the loop; from S3 (a network round trip), or larger, in the thread."""
    if size <= LOOP_READ_MAX_BYTES and not blob_storage_is_s3():
        return blob_read_bytes(key=key)
    return await sync_to_async(blob_read_bytes)(key=key)


def blob_delete(*, key: str) -> None:
    """Delete a blob; a blob that is already gone is fine, a storage error is logged, not raised."""
    try:
        blob_storage().delete(key)
    except Exception:  # cleanup must not turn a handled error into a 500
        logger.warning("storage: could not delete blob %s", key, exc_info=True)


def s3_client() -> Any:
    return s3_storage().connection.meta.client


def s3_bucket_name() -> str:
    return s3_storage().bucket_name


class LimitExceeded(Exception):
    """The stream grew past the number of bytes the caller allowed."""


class HashingReader(io.RawIOBase):
    """A non-seekable reader over ``read(n)`` that hashes and counts bytes as they pass.

    ``limit`` (bytes) stops an upload as soon as it outgrows the quota, without reading the rest.
    Hashing runs on one helper thread (hashlib releases the GIL), overlapping the storage write of
    the same chunk; at most ``_MAX_PENDING`` chunks wait for it, so memory stays bounded.
    """

    _MAX_PENDING = 2

    def __init__(self, read: Callable[[int], bytes], *, limit: int | None = None) -> None:
        super().__init__()
        self._read = read
        self._limit = limit
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._pending: deque[Future[None]] = deque()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        data = self._read(CHUNK_SIZE if size is None or size < 0 else size)
        if not data:
            return b""
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise LimitExceeded(self.size)
        self._pending.append(self._hasher.submit(self.sha256.update, bytes(data)))
        while len(self._pending) > self._MAX_PENDING:
            self._pending.popleft().result()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        while self._pending:
            self._pending.popleft().result()
        return self.sha256.hexdigest()

    def close(self) -> None:
        self._hasher.shutdown(wait=True, cancel_futures=True)
        super().close()


def blob_write_stream(*, key: str, reader: HashingReader) -> str:
    """Stream ``reader`` into storage chunk by chunk (FileSystemStorage: File.chunks; S3: upload_fileobj)."""
    # typeshed does not count an io.RawIOBase as a typing.IO, which File is typed to take.
    content = File(reader, name=key)  # type: ignore[arg-type]
    content.DEFAULT_CHUNK_SIZE = CHUNK_SIZE
    return blob_storage().save(key, content)


def s3_object_key(key: str) -> str:
    """The S3 object key of a blob key: the storage's ``location`` prefix joined the way S3Storage does."""
    from storages.utils import clean_name, safe_join

    return safe_join(s3_storage().location, clean_name(key))


def s3_multipart_abort(*, key: str, upload_id: str) -> None:
    """Abort a multipart upload; a failure is logged (S3's lifecycle rules are the backstop)."""
    try:
        s3_client().abort_multipart_upload(Bucket=s3_bucket_name(), Key=s3_object_key(key), UploadId=upload_id)
    except Exception:
        logger.warning("storage: could not abort multipart upload %s", upload_id, exc_info=True)
