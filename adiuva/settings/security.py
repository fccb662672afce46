"""Secrets and request hardening: the signing and encryption keys, cookies, request body caps, CORS."""

from __future__ import annotations

from .environment import env
from .storage import STORAGE_RECORD_MAX_BYTES

# KEYS
# ------------------------------------------------------------------------------
SECRET_KEY = env("DJANGO_SECRET_KEY")
# Server master keys wrapping each user's Fernet key (first one encrypts; all decrypt).
FERNET_MASTER_KEYS = env.list("FERNET_MASTER_KEYS")
# What rests in or crosses Redis (channel-layer messages, stream logs, journey sessions) is
# encrypted with these (any strings, each hashed into a key; first encrypts). Derived from the
# master keys unless set, so it is never off.
REDIS_ENCRYPTION_KEYS = env.list("REDIS_ENCRYPTION_KEYS", default=[f"redis:{key}" for key in FERNET_MASTER_KEYS])

# COOKIES AND FRAMES
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# REQUEST BODIES
# ------------------------------------------------------------------------------
# Strict JSON: depth-limited, no unpaired surrogates, no NaN (see apps.core.parsers).
REQUEST_JSON_MAX_DEPTH = env.int("REQUEST_JSON_MAX_DEPTH", default=64)

# Request body caps, enforced by an ASGI middleware before Django reads a byte (apps.core.body_limits):
# a Content-Length over the cap is a 413 at once, a chunked body is cut off at the cap. The longest
# matching path prefix wins; everything else gets REQUEST_BODY_MAX_BYTES.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=1024 * 1024)
# A record or vector blob travels base64-encoded (4/3 larger) inside a JSON envelope.
_BASE64_RECORD_BYTES = -(-STORAGE_RECORD_MAX_BYTES // 3) * 4 + 64 * 1024
REQUEST_BODY_PLUGIN_MAX_BYTES = env.int("REQUEST_BODY_PLUGIN_MAX_BYTES", default=50 * 1024 * 1024)
REQUEST_BODY_LIMITS: dict[str, int] = {
    "/api/v1/storage/records": _BASE64_RECORD_BYTES,
    "/api/v1/storage/vectors": _BASE64_RECORD_BYTES,
    "/api/v1/plugins": REQUEST_BODY_PLUGIN_MAX_BYTES,
    "/admin/": REQUEST_BODY_PLUGIN_MAX_BYTES,
}
# Routes that stream their body and enforce their own cap (the backup upload caps at the user's remaining
# quota after authenticating). The generic cap still applies to them unless the request carries a validly
# signed access token, so an anonymous body never reaches them unbounded.
REQUEST_BODY_STREAMED_ROUTES: list[tuple[str, str]] = [("PUT", "/api/v1/backup")]
# Django's own in-memory guard: DATA_UPLOAD_MAX_MEMORY_SIZE, but never tighter than the largest cap above.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(
    [
        env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024),
        REQUEST_BODY_MAX_BYTES,
        *REQUEST_BODY_LIMITS.values(),
    ]
)

# CORS
# ------------------------------------------------------------------------------
# django-cors-headers (its middleware sits in django.py's MIDDLEWARE): the desktop app's app:// origins and
# local development servers. The device socket uses the same allow-list.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=["app://adiuva"])
CORS_ALLOWED_ORIGIN_REGEXES = env.list(
    "CORS_ALLOWED_ORIGIN_REGEXES",
    default=[r"^app://.*$", r"^http://localhost(:\d+)?$", r"^http://127\.0\.0\.1(:\d+)?$"],
)
CORS_URLS_REGEX = r"^/api/.*$"
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "X-Checksum",
    "X-Total-Count",
    "X-Page",
    "X-Per-Page",
    "Link",
    "Retry-After",
    "X-Backup-Version",
    "X-Backup-Timestamp",
    "X-Backup-Checksum",
]
