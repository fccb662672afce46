"""Static files served by the app itself (WhiteNoise), streamed asynchronously under ASGI.

WhiteNoise's middleware answers with a ``FileResponse`` over a plain file. Under ASGI Django can
only consume such a synchronous iterator by reading the whole file into memory first (and warns
on every request). This middleware hands Django an asynchronous iterator instead, which reads the
file block by block in a worker thread, so the event loop never blocks on disk and memory stays
bounded whatever the file's size. It is async-capable, so the middleware chain stays on the event
loop (a sync-only middleware in the chain made every request hop threads twice).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import IO

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
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

    sync_capable = True
    async_capable = True

    def __init__(self, get_response, settings=settings) -> None:
        super().__init__(get_response, settings=settings)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path_info
        if self.autorefresh:
            # Looking a file up on disk (DEBUG) blocks; only paths under the static prefix can match.
            if not path.startswith(self.static_prefix):
                return await self.get_response(request)
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(path)
        else:
            static_file = self.files.get(path)
        if static_file is None:
            return await self.get_response(request)
        # Opening and stat-ing the file blocks too; the body then streams asynchronously.
        return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)

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
