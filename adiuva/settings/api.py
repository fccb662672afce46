"""The REST API: Django REST framework's defaults and the OpenAPI schema."""

from __future__ import annotations

from .environment import env

# DJANGO REST FRAMEWORK
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.accounts.authentication.AccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's negotiation, its answer per (renderers, format, Accept) remembered (apps.core.negotiation).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.core.negotiation.RememberingContentNegotiation",
    # Strict JSON: depth-limited (REQUEST_JSON_MAX_DEPTH), no unpaired surrogates, no NaN (see apps.core.parsers).
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.exception_handler.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Per-tier requests per minute for authenticated callers (billing owns the numbers).
    "DEFAULT_THROTTLE_CLASSES": ["apps.billing.throttles.TierRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "login": env("THROTTLE_LOGIN_RATE", default="10/min"),
        "register": env("THROTTLE_REGISTER_RATE", default="10/hour"),
        "verify_email": env("THROTTLE_VERIFY_EMAIL_RATE", default="3/hour"),
    },
    # X-Forwarded-For is believed only from this many proxies in front of the app (0: from nobody), so a
    # client cannot pick its own throttle bucket. uvicorn's --forwarded-allow-ips (FORWARDED_ALLOW_IPS,
    # read by the Procfile/Dockerfile) must name the same proxies.
    "NUM_PROXIES": env.int("TRUSTED_PROXY_COUNT", default=0),
}

# OPENAPI SCHEMA (drf-spectacular)
# ------------------------------------------------------------------------------
SPECTACULAR_SETTINGS = {
    "TITLE": "Adiuva API",
    "DESCRIPTION": "Cloud backend of the Adiuva desktop app.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI / Redoc assets ship in drf-spectacular-sidecar (pinned, served as static files):
    # no CDN, so the docs page works offline and cannot change under us.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
