"""Responses that stream a stored blob without holding it in memory, under WSGI and ASGI alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.http import FileResponse

from .blob_store import CHUNK_SIZE


class BlobFileResponse(FileResponse):
    """A FileResponse whose async iteration reads 1 MiB chunks in a worker thread.

    Django's StreamingHttpResponse would otherwise consume a sync file with ``list()`` under ASGI,
    loading a multi-GB backup into memory.
    """

    block_size = CHUNK_SIZE

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self.file_to_stream
        assert stream is not None  # FileResponse keeps the file it was given
        read = sync_to_async(stream.read, thread_sensitive=False)
        while chunk := await read(self.block_size):
            yield chunk
