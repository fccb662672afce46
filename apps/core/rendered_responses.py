"""DRF answers rendered in the view's own thread, for the hot read endpoints.

Django's async handler runs a sync view in its one sync thread and then, for a response that can
still be rendered (DRF's ``Response`` is a template response), hops to that thread a second time
only to render it. Under concurrent requests every hop waits behind the other requests' views, so
the second one costs a whole queue wait; an answer rendered before the view returns skips it.
Content negotiation is unchanged: DRF picks the renderer before the handler runs (406 as before).
"""

from __future__ import annotations

from typing import Any

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


class RenderedInViewMixin:
    """For an ``APIView``: its answers (errors included) leave the view rendered."""

    def finalize_response(self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any) -> Any:
        finalized = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        return response_rendered(response=finalized)
