"""Django itself: debug and hosts, the database, URLs, installed apps, middleware, templates, e-mail."""

from __future__ import annotations

from urllib.parse import unquote

from django.core.exceptions import ImproperlyConfigured

from .environment import BASE_DIR, env

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
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
# The hot reads of async API views (the session check, auth/me, the records list) awaited on the web
# server's loop over a pool of psycopg async connections of their own (apps.core.loop_db) instead of
# a trip to the request's thread. Off: those reads run in the thread through the ORM, as elsewhere.
DATABASE_LOOP_READS = env.bool("DATABASE_LOOP_READS", default=True)
DATABASE_LOOP_POOL_MAX_SIZE = env.int("DATABASE_LOOP_POOL_MAX_SIZE", default=8)
if DATABASE_LOOP_POOL_MAX_SIZE < 1:
    raise ImproperlyConfigured("DATABASE_LOOP_POOL_MAX_SIZE must be 1 or more")
# The loop's reads asked in the same turn of the loop (concurrent requests' session checks and pages)
# go to PostgreSQL as one message on one connection, at most this many statements in it.
DATABASE_LOOP_BATCH_MAX = env.int("DATABASE_LOOP_BATCH_MAX", default=16)
if DATABASE_LOOP_BATCH_MAX < 1:
    raise ImproperlyConfigured("DATABASE_LOOP_BATCH_MAX must be 1 or more")
# Those hot reads as prepared statements of each connection (apps.core.loop_prepared): PostgreSQL plans
# each once per connection. Off for a pooler in transaction mode, which keeps no prepared statements.
DATABASE_LOOP_PREPARE = env.bool("DATABASE_LOOP_PREPARE", default=True)
# The nightly check of the tallies against their rows (apps.core.tallies, Celery beat) logs and counts a
# drift; on, it also repairs it, holding the drifted source table's writers for the repair's length.
TALLIES_AUTO_REPAIR = env.bool("TALLIES_AUTO_REPAIR", default=False)

# URLS
# ------------------------------------------------------------------------------
ROOT_URLCONF = "adiuva.urls"
ASGI_APPLICATION = "adiuva.asgi.application"
# Threads a web process keeps for HTTP requests' sync code (apps.core.request_threads), each serving one
# request at a time and kept for the next instead of started and joined per request. A request past
# them gets a thread of its own, as Django gives every request. 0: always that. Size it to the
# requests a process holds at once (the async hot reads hold more side by side than sync views did):
# past it every request starts and joins a thread (bench/rest_per_process.py: 8 → 32 served the bare
# view 1.4x and the memory list 1.4x at 16 clients). A thread holds a database connection only from its
# request's first query in the thread to the request's end; requests past DATABASE_POOL_MAX_SIZE
# that query there wait for one, whatever this number.
ASGI_REQUEST_THREADS = env.int("ASGI_REQUEST_THREADS", default=32)
if ASGI_REQUEST_THREADS < 0:
    raise ImproperlyConfigured("ASGI_REQUEST_THREADS must be 0 or more")
# The views of this many recent request paths are remembered per web process (core.url_resolution)
# instead of being looked for through the URL patterns on every request. 0: look every time.
URL_RESOLVE_CACHE_SIZE = env.int("URL_RESOLVE_CACHE_SIZE", default=2048)
if URL_RESOLVE_CACHE_SIZE < 0:
    raise ImproperlyConfigured("URL_RESOLVE_CACHE_SIZE must be 0 or more")
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
    "corsheaders",
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

# MIDDLEWARE
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
    # One access log line per request, with the client address the throttles count.
    "apps.core.access_log.AccessLogMiddleware",
    # Django's own middleware as apps.core.django_middleware subclasses them: under ASGI their hooks run
    # on the event loop, not each in a trip to the request's thread.
    "apps.core.django_middleware.SecurityMiddleware",
    # Static files (admin, API docs) come from the app itself, before sessions or auth run.
    "apps.core.static_files.AsyncStaticFilesMiddleware",
    "apps.core.django_middleware.SessionMiddleware",
    # CORS headers (allow-list in security.py) before CommonMiddleware can answer a redirect.
    "corsheaders.middleware.CorsMiddleware",
    "apps.core.django_middleware.CommonMiddleware",
    "apps.core.django_middleware.CsrfViewMiddleware",
    "apps.core.django_middleware.AuthenticationMiddleware",
    "apps.core.django_middleware.MessageMiddleware",
    "apps.core.django_middleware.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
# Django's deploy checks find these three middleware by their dotted path and so miss the subclasses
# above; apps.core.django_middleware.protections_in_chain_check asks the same by class (core.W001-W003).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

# STATIC / TEMPLATES
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
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

# EMAIL
# ------------------------------------------------------------------------------
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="Adiuva <noreply@adiuva.app>")
