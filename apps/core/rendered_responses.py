"""DRF answers rendered in the view's own thread, for the hot read endpoints.

Django's async handler runs a sync view in its one sync thread and then, for a response that can
still be rendered (DRF's ``Response`` is a template response), hops to that thread a second time
only to render it. Under concurrent requests every hop waits behind the other requests' views, so
the second one costs a whole queue wait; an answer rendered before the view returns skips it.
Content negotiation is unchanged: DRF picks the renderer before the handler runs (406 as before).
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpResponse, HttpResponseBase
from django.template.response import SimpleTemplateResponse
from rest_framework.request import Request


class RenderedResponse(HttpResponse):
    """A DRF ``Response`` already rendered: the same status, headers, cookies and bytes, and its
    ``data`` for callers that read it."""

    data: Any = None


def response_rendered(*, response: HttpResponseBase) -> HttpResponseBase:
    if not isinstance(response, SimpleTemplateResponse):
        return response
    response.render()
    rendered = RenderedResponse(response.content, status=response.status_code)
    rendered.headers = response.headers
    rendered.cookies = response.cookies
    rendered.data = getattr(response, "data", None)
    return rendered


# What DRF's JSONRenderer escapes after ``json.dumps`` (the JavaScript line terminators), in UTF-8.
_LINE_TERMINATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def json_rendered(*, data: Any, headers: dict[str, str] | None = None) -> RenderedResponse:
    """``Response(data, headers=headers)`` as DRF's ``JSONRenderer`` renders it (200,
    ``application/json``, the same bytes and headers in the same order), written by orjson at a
    quarter of the CPU, for the hot lists of text. ``data`` may hold only dicts with str keys, lists,
    str, int, bool and None: orjson writes some floats in another form than ``json`` (``0.00001`` for
    ``1e-05``), so a caller with floats keeps ``Response``. Content negotiation is DRF's as before (it
    happens before the view runs: a 406 stays a 406)."""
    content = orjson.dumps(data)
    for raw, escaped in _LINE_TERMINATORS:
        if raw in content:
            content = content.replace(raw, escaped)
    rendered = RenderedResponse(content, content_type="application/json")
    for name, value in (headers or {}).items():
        rendered[name] = value  # after Content-Type, as Response(headers=...) sets them
    rendered.data = data
    return rendered


class RenderedInViewMixin:
    """For an ``APIView``: its answers (errors included) leave the view rendered."""

    def finalize_response(self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any) -> Any:
        finalized = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        return response_rendered(response=finalized)
