"""Redis and what runs on it: the cache, the Channels layer and the Celery broker (one server,
separate databases)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from adiuva.redis_urls import redis_url_for

from .django import TIME_ZONE
from .environment import env
from .security import REDIS_ENCRYPTION_KEYS

# REDIS (one server: cache, channel layer and Celery broker on separate databases)
# ------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")

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
            # msgpack sealed with AES-GCM under per-process keys (apps.core.channel_layer_seal,
            # registered when the core app is ready), not channels-redis' Fernet tokens.
            "serializer_format": "adiuva-sealed-msgpack",
        },
    }
}
# How channel-layer messages are sealed: "aesgcm" (this release) or "fernet" (what a process of the
# release before reads). Every process reads both. Rolling from that release, deploy once with
# "fernet" (and DEVICE_NODE_SEAL "fernet"), then switch both back when no process of it is left.
CHANNEL_LAYER_SEAL = env.str("CHANNEL_LAYER_SEAL", default="aesgcm")
if CHANNEL_LAYER_SEAL not in ("aesgcm", "fernet"):
    raise ImproperlyConfigured(f"CHANNEL_LAYER_SEAL must be aesgcm or fernet, not {CHANNEL_LAYER_SEAL!r}")

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
