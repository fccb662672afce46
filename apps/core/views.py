"""JSON 404/500 pages for the API; the admin and account pages keep Django's HTML ones.

``api_not_found`` is routed for every unmatched ``/api/`` path: with DEBUG on, Django answers an
unresolved URL with its HTML debug page (listing the URL patterns) and never calls ``handler404``.
"""

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from .database_outage import RETRY_AFTER_SECONDS, is_database_unavailable
from .errors import CoreErrorCode
from .exception_handler import error_body


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(CoreErrorCode.NOT_FOUND, "No such endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside the failed request's except block, so the exception is at hand.
    exc = sys.exc_info()[1]
    if exc is not None and is_database_unavailable(exc) and request.path.startswith("/api/"):
        response = JsonResponse(
            error_body(CoreErrorCode.DATABASE_UNAVAILABLE, "The database is briefly unavailable; retry shortly."),
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(CoreErrorCode.INTERNAL_ERROR, "An internal error occurred."), status=500)
    return defaults.server_error(request)


@csrf_exempt  # an unknown path is a 404 for every method, never the CSRF page
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return JsonResponse(error_body(CoreErrorCode.NOT_FOUND, "No such endpoint."), status=404)
