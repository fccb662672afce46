"""DRF's content negotiation with its answers remembered, for the requests every client repeats.

Which renderer a request gets depends only on the view's renderer classes, the ``format`` asked for
and the ``Accept`` header, and the desktop client sends the same few on every request: parsing the
header and matching it against the renderers cost ~20 µs of each API request. The answer for a
combination is worked out by DRF itself the first time and remembered (a bounded number of
combinations, since the header is the client's choice); anything DRF refuses (406, an unknown
format's 404) is refused by DRF again on every request, never remembered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

ANSWERS_MAX = 256

# (renderer classes, format, Accept) → (the chosen renderer's position among them, accepted media type)
_answers: dict[tuple[tuple[type, ...], str | None, str], tuple[int, str]] = {}
_answers_lock = threading.Lock()


class RememberingContentNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        format_ = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        # What DRF reads (request.headers.get("accept", "*/*")), straight from the environ.
        key = (tuple(type(renderer) for renderer in renderers), format_, request.META.get("HTTP_ACCEPT", "*/*"))
        answer = _answers.get(key)
        if answer is not None:
            return renderers[answer[0]], answer[1]
        renderer, media_type = super().select_renderer(request, renderers, format_suffix)
        with _answers_lock:
            if len(_answers) < ANSWERS_MAX:
                _answers[key] = (renderers.index(renderer), media_type)
        return renderer, media_type
