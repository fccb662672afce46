"""Test settings: the same embedded PostgreSQL and Redis, fast hashing, isolated Redis databases."""

import os

from adiuva import embedded

embedded.ensure_environment()
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault(
    "FERNET_MASTER_KEYS",
    "dGVzdC1tYXN0ZXIta2V5LW51bWJlci1vbmUtMzJieXQ=",
)

from adiuva.redis_urls import redis_url_for  # noqa: E402

from .base import *  # noqa: E402,F403
from .base import REDIS_URL, REST_FRAMEWORK  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests get their own Redis databases so they never see a running dev server's keys.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url_for(REDIS_URL, db=11),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [redis_url_for(REDIS_URL, db=12)]},
    }
}
CELERY_BROKER_URL = redis_url_for(REDIS_URL, db=10, kombu=True)
CELERY_TASK_ALWAYS_EAGER = False
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "5/min", "register": "1000/min"}}
MEDIA_ROOT = str(embedded.DATA_DIR / "test-media")
