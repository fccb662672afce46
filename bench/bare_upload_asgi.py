"""The limit for a backup upload on this server: a bare ASGI app that only hashes the body and
writes it to a file (no auth, no database, no Django). bench/backup_upload.py runs it under the
same uvicorn as the real route and reports the route's throughput as a ratio of this one's.

    uvicorn --app-dir bench bare_upload_asgi:app
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

TARGET = Path(os.environ.get("MEDIA_ROOT", "/tmp")) / "bare"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    status, body = 200, b"{}"
    if scope["method"] == "PUT":
        TARGET.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with (TARGET / uuid.uuid4().hex).open("wb") as handle:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
                if not message.get("more_body", False):
                    break
        status, body = 201, json.dumps({"checksum": digest.hexdigest(), "size_bytes": size}).encode()
    else:
        while (await receive()).get("more_body", False):
            pass
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
