"""One log line per HTTP request, with the real client address, and the request-latency metric.

The client address is the one the throttles count (DRF's ``get_ident``): ``X-Forwarded-For`` is
believed only for the ``TRUSTED_PROXY_COUNT`` proxies in front of the app (``REST_FRAMEWORK
["NUM_PROXIES"]``), never from anyone who sends the header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import BaseThrottle

from . import metrics
from .logging import redact

logger = logging.getLogger("adiuva.access")


def client_address(request: HttpRequest) -> str:
    """The caller's address, trusting forwarded headers only from the configured proxies."""
    return BaseThrottle().get_ident(request) or ""  # type: ignore[arg-type]


def route_label(request: HttpRequest) -> str:
    """The URL pattern that answered (bounded cardinality for metrics), not the concrete path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return "/" + match.route.lstrip("^").rstrip("$") if match.route else (match.view_name or "unmatched")


def _log(request: HttpRequest, response: HttpResponse, started: float) -> None:
    elapsed = time.perf_counter() - started
    route = route_label(request)
    metrics.request_observed(route=route, method=request.method or "", status=response.status_code, seconds=elapsed)
    logger.info(
        "%s %s %s",
        request.method,
        redact(request.get_full_path()),
        response.status_code,
        extra={
            "client_ip": client_address(request),
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 1),
            "route": route,
        },
    )


class AccessLogMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _log(request, response, started)  # type: ignore[arg-type]
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)  # type: ignore[misc]
        _log(request, response, started)
        return response
