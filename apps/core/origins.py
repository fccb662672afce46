"""The browser Origins the API trusts: one allow-list, read by CORS and by the device socket.

django-cors-headers reads ``CORS_ALLOWED_ORIGINS`` and ``CORS_ALLOWED_ORIGIN_REGEXES`` for
``/api/…``; the socket asks :func:`origin_allowed`, which reads the same two settings, plus
``DEVICE_ALLOWED_ORIGINS`` for origins only a socket sends (an Electron page loaded from ``file://``).
"""

from __future__ import annotations

import re

from django.conf import settings


def origin_allowed(origin: str | None) -> bool:
    """Whether a browser Origin may open the socket; a missing one is fine (a token is required anyway)."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    listed = {o.rstrip("/") for o in [*settings.CORS_ALLOWED_ORIGINS, *settings.DEVICE_ALLOWED_ORIGINS]}
    if "*" in listed or origin in listed:
        return True
    return any(re.match(pattern, origin) for pattern in settings.CORS_ALLOWED_ORIGIN_REGEXES)
