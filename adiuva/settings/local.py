"""Laptop settings: DEBUG on, fixed development keys. The entry points (adiuva.startup) start the
embedded PostgreSQL and Redis when no URLs are given."""

from . import environment

environment.defaults(
    {
        "DJANGO_SECRET_KEY": "local-insecure-secret-key-change-me-0123456789abcdef",
        # A fixed development master key; production reads its own from the environment.
        "FERNET_MASTER_KEYS": "dGhpcy1pcy1hLWxvY2FsLWRldi1rZXktMzItYnl0ZXM=",
    }
)

from .base import *  # noqa: E402,F403
from .base import env  # noqa: E402

DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "0.0.0.0"])
# Static files straight from the apps' static/ folders (no collectstatic), re-scanned on change.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
