"""Test settings: the same embedded PostgreSQL and Redis, fast hashing, isolated Redis databases.

Concurrent test runs on one machine set ADIUVA_TEST_RUN (a short tag) to get their own test
database and Redis databases. Each pytest-xdist worker of a run (``make test`` runs two) adds its
own name to the tag, so the workers of one run are concurrent runs too; the servers and workers a
test starts inherit the worker's tag.

pytest and the benchmarks load these settings without going through an entry point, so unlike the
other settings modules this one prepares its process itself: it starts the embedded services when
DATABASE_URL / REDIS_URL are not set and creates and exports the test run's metrics directory.
"""

import os
from pathlib import Path

from adiuva import embedded

from . import environment

embedded.ensure_environment()
if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("ADIUVA_TEST_RUN", "").endswith(
    os.environ["PYTEST_XDIST_WORKER"]
):
    os.environ["ADIUVA_TEST_RUN"] = os.environ.get("ADIUVA_TEST_RUN", "") + os.environ["PYTEST_XDIST_WORKER"]
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the controller's, inherited: the worker's own below
environment.defaults(
    {
        "DJANGO_SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdef",
        "FERNET_MASTER_KEYS": "dGVzdC1tYXN0ZXIta2V5LW51bWJlci1vbmUtMzJieXQ=",
    }
)
# Each test run writes its own metric samples (prometheus-client multiprocess files); exported before
# any app imports prometheus_client.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(embedded.DATA_DIR / f"metrics-test-{os.environ.get('ADIUVA_TEST_RUN', '')}")
)
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

from adiuva.redis_urls import redis_url_for  # noqa: E402

from .base import *  # noqa: E402,F403
from .base import CACHES, DATABASES, REDIS_ENCRYPTION_KEYS, REDIS_URL, REST_FRAMEWORK  # noqa: E402

_RUN = os.environ.get("ADIUVA_TEST_RUN", "")
_REDIS_BASE = 10 + 4 * (sum(_RUN.encode()) % 12) if _RUN else 10

DEBUG = False
DATABASES["default"]["TEST"] = {"NAME": f"test_adiuva{'_' + _RUN if _RUN else ''}"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests get their own Redis databases so they never see a running dev server's keys.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url_for(REDIS_URL, db=_REDIS_BASE + 1),
        "OPTIONS": CACHES["default"]["OPTIONS"],
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": redis_url_for(REDIS_URL, db=_REDIS_BASE + 2), "socket_timeout": 30}],
            "symmetric_encryption_keys": REDIS_ENCRYPTION_KEYS,
            "serializer_format": "adiuva-sealed-msgpack",
        },
    }
}
CELERY_BROKER_URL = redis_url_for(REDIS_URL, db=_REDIS_BASE, kombu=True)
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"login": "5/min", "register": "1000/min", "verify_email": "3/hour"},
}
# Billing: Stripe "configured" with a fake key (tests point stripe.api_base at a loopback fake);
# per-tier request budgets scaled up so other apps' tests never hit them (billing tests reset it).
STRIPE_SECRET_KEY = "sk_test_adiuvaFakeStripeKey0123456789"
BILLING_RATE_LIMIT_SCALE = 100
# dj-stripe's migration history takes minutes to replay on every test database; tests apply one
# squashed initial migration of the same models instead (production migrates normally; a billing
# test checks it still matches dj-stripe's models).
MIGRATION_MODULES = {"djstripe": "apps.billing.tests.migrations.djstripe"}
MEDIA_ROOT = str(embedded.DATA_DIR / f"test-media{'-' + _RUN if _RUN else ''}")
STORAGES = {**STORAGES, "blobs": blob_storage_config(bucket="", location=f"{MEDIA_ROOT}/blobs")}
# Assistant: never a real LLM (tests point OPENAI_BASE_URL at the scripted server); fail fast.
OPENAI_API_KEY = ""
OPENAI_BASE_URL = ""
ASSISTANT_LLM_TIMEOUT = 5.0
ASSISTANT_LLM_MAX_RETRIES = 0
ASSISTANT_TOOL_TIMEOUT = 2.0
ASSISTANT_REQUEST_TIMEOUT = 20.0
# Static files from the apps' static/ folders, as on a laptop (no collectstatic before tests).
WHITENOISE_USE_FINDERS = True
