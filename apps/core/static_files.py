"""Static files served by the app itself (WhiteNoise), streamed asynchronously under ASGI.

WhiteNoise's middleware answers with a ``FileResponse`` over a plain file. Under ASGI Django can
only consume such a synchronous iterator by reading the whole file into memory first (and warns
on every request). This middleware hands Django an asynchronous iterator instead, which reads the
file block by block in a worker thread, so the event loop never blocks on disk and memory stays
bounded whatever the file's size.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import IO

from asgiref.sync import sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.responders import StaticFile

# The chunk size Django's ASGI handler sends in.
BLOCK_SIZE = 64 * 1024


async def _file_blocks(file: IO[bytes] | None) -> AsyncIterator[bytes]:
    if file is None:  # HEAD, 304 Not Modified
        return
    read = sync_to_async(file.read, thread_sensitive=False)
    try:
        while block := await read(BLOCK_SIZE):
            yield block
    finally:
        file.close()


class AsyncStaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, answering with an asynchronously streamed body."""

    def add_files(self, root: str, prefix: str | None = None) -> None:
        # Without collectstatic (laptops, tests) files come from the finders: no STATIC_ROOT is normal.
        if self.use_finders and not os.path.isdir(root):
            return
        super().add_files(root, prefix)

    @staticmethod
    def serve(static_file: StaticFile, request: HttpRequest) -> StreamingHttpResponse:
        served = static_file.get_response(request.method, request.META)
        response = StreamingHttpResponse(_file_blocks(served.file), status=int(served.status))
        del response["Content-Type"]  # WhiteNoise's own headers say it, with the charset
        for key, value in served.headers:
            response[key] = value
        return response
