"""What a process does before Django starts, so that importing settings never has to.

Every entry point (manage.py, adiuva/asgi.py, adiuva/wsgi.py, adiuva/celery.py) calls ``prepare``:
it picks the settings module, starts the embedded PostgreSQL and Redis for the laptop settings when
their URLs are not set, and creates and exports the Prometheus multiprocess directory. The test
settings start their embedded services themselves (pytest and the benchmarks import them directly).
"""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

from adiuva import embedded

DEFAULT_SETTINGS_MODULE = "adiuva.settings.local"
# Settings modules that run on the embedded services when DATABASE_URL / REDIS_URL are not set.
EMBEDDED_SETTINGS_MODULES = frozenset({"adiuva.settings.local", "adiuva.settings.test"})


def prepare() -> None:
    """Make the process ready for Django: settings module, embedded services, metrics directory."""
    module = os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
    if module in EMBEDDED_SETTINGS_MODULES:
        embedded.ensure_environment()
    metrics_dir_prepare()


def metrics_dir_prepare() -> Path:
    """Create PROMETHEUS_MULTIPROC_DIR and export it: prometheus_client reads it from the environment
    when it is imported. On a read-only image the temporary directory stands in (and the setting says so)."""
    from django.conf import settings

    path = Path(settings.PROMETHEUS_MULTIPROC_DIR)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / "adiuva-metrics"
        path.mkdir(parents=True, exist_ok=True)
        settings.PROMETHEUS_MULTIPROC_DIR = str(path)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def imported_objects_freeze() -> None:
    """Take what the process holds once its application is built (modules, classes, settings, the
    import-time objects of Django, DRF and the SDKs: ~400,000) out of the cyclic garbage collector's
    sight, for the rest of the process. Each full collection walked all of them: ~130 ms of CPU, a
    stall of every request in the process, several times a minute under load (about 7 % of a memory
    list's CPU, 2-5 % of the lightest view's). Garbage is still collected: what requests make is
    walked as before; only these objects, which live as long as the process anyway, are never freed."""
    gc.collect()
    gc.freeze()


def worker_warm() -> None:
    """A worker process's boot, once Django is set up: import what a task's first calls would
    otherwise import while the task waits (the async HTTP backend every model call runs on, the
    channel layer's backend and the cache's; on the 2-core dev box ~30 ms at the head of each
    process's first agent run), then ``imported_objects_freeze`` as the web process does."""
    import anyio._backends._asyncio  # noqa: F401  # httpx's async transport (the model calls) runs on it
    from channels.layers import channel_layers
    from django.core.cache import caches

    channel_layers.make_backend("default")  # a throwaway instance: its module stays imported
    caches["default"]  # the cache backend's module is imported on first use
    imported_objects_freeze()
