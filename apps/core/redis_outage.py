"""What a Redis outage looks like to the app, and how it is reported (once in a while, not per request).

Policy (README: "When Redis is down"):
- fail OPEN where refusing would hurt more than it protects: the per-tier request budget
  (``apps.billing.throttles.TierRateThrottle``) lets requests through while Redis is away;
- fail CLOSED where Redis is the protection: login and registration throttles, so password guessing
  cannot speed up during an outage; those answer 503 ``redis_unavailable`` with ``Retry-After``;
- anything else that needs Redis (chat over the channel layer, the cache) answers the same 503.
Nothing needs restarting: redis-py reconnects on the next call once Redis is back.
"""

from __future__ import annotations

import logging
import threading
import time

import redis.exceptions
from kombu.exceptions import OperationalError as BrokerUnavailable

from . import metrics

logger = logging.getLogger(__name__)

# Connection-level failures only; a Redis *response* error (WRONGTYPE, OOM…) is a bug to see.
REDIS_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    BrokerUnavailable,
    ConnectionRefusedError,
)
RETRY_AFTER_SECONDS = 5
_REPORT_EVERY_SECONDS = 30.0
_last_report: dict[str, float] = {}
_lock = threading.Lock()


def is_redis_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, REDIS_UNAVAILABLE_ERRORS)


def redis_outage_noted(*, where: str, exc: BaseException) -> None:
    """Count the failure; log one warning (no traceback) per place and process every 30 s."""
    metrics.redis_unavailable(where=where)
    now = time.monotonic()
    with _lock:
        if now - _last_report.get(where, -_REPORT_EVERY_SECONDS) < _REPORT_EVERY_SECONDS:
            return
        _last_report[where] = now
    logger.warning("redis unavailable (%s): %s: %s", where, type(exc).__name__, exc)
