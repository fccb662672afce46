"""``GET /metrics``: Prometheus text format, for a scraper holding ``METRICS_TOKEN`` (off when unset).

Not public: it names routes and volumes. A bearer token suits scrapers better than a staff login; an
unset token turns the endpoint off (404) rather than open.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from . import metrics
from .errors import CoreErrorCode
from .exception_handler import error_body


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    expected = settings.METRICS_TOKEN
    if not expected:
        return JsonResponse(error_body(CoreErrorCode.NOT_FOUND, "No such endpoint."), status=404)
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        response = JsonResponse(
            error_body(CoreErrorCode.NOT_AUTHENTICATED, "Send Authorization: Bearer <METRICS_TOKEN>."), status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
