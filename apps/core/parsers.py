"""The JSON parser of every REST view: strict JSON, bounded nesting, text PostgreSQL and Redis can store.

The standard library decodes 1,000 nested arrays by recursion (a RecursionError, then a 500) and
accepts ``"\\ud800"`` (an unpaired surrogate that no UTF-8 encoder, hence no database, cache key or
log line, accepts) and ``"\\u0000"`` (a NUL, which PostgreSQL's text and jsonb refuse). All are the
client's mistake: a 400 with a stable code, before any view code runs, in values and keys at any depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers

from .errors import ApplicationError, CoreErrorCode


def _too_deep(limit: int) -> ApplicationError:
    return ApplicationError(
        CoreErrorCode.JSON_TOO_DEEP, f"The JSON body is nested more than {limit} levels deep.", status=400
    )


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise ApplicationError(
            CoreErrorCode.NUL_CHARACTER,
            "The JSON body contains a NUL character (\\u0000), which text cannot hold.",
            status=400,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApplicationError(
            CoreErrorCode.INVALID_UNICODE,
            "The JSON body contains a string that is not valid Unicode (an unpaired surrogate escape).",
            status=400,
        ) from None


def json_validate_structure(value: Any, *, max_depth: int) -> None:
    """Raise when ``value`` nests deeper than ``max_depth`` or holds text that can't be encoded (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise _too_deep(max_depth)
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise _too_deep(max_depth)
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = settings.REQUEST_JSON_MAX_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep(limit) from None
        json_validate_structure(data, max_depth=limit)
        return data
