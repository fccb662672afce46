"""Prometheus metrics: small named hooks the rest of the code calls, and the registry the endpoint serves.

Web runs ``WEB_CONCURRENCY`` processes beside Celery workers, so metrics use prometheus-client's
multiprocess mode: every process writes its samples under ``PROMETHEUS_MULTIPROC_DIR`` (set by the
settings before this module is imported; ``runstack`` empties it at start) and the endpoint sums
them. Values that are facts of the database rather than of one process (devices online) are read
at scrape time from sources apps register with ``gauge_source``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUEST_SECONDS = Histogram(
    "adiuva_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL pattern.",
    ["route", "method", "status_class"],
    buckets=_LATENCY_BUCKETS,
)
TOOL_CALL_SECONDS = Histogram(
    "adiuva_tool_call_duration_seconds",
    "Round trip of a tool call to a device: own_process (the socket lives here) or other_process (the holder's node).",
    ["route", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
STREAM_FIRST_TOKEN_SECONDS = Histogram(
    "adiuva_stream_first_token_seconds",
    "Time from a chat request to its first streamed text chunk.",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
THROTTLE_REJECTIONS = Counter(
    "adiuva_throttle_rejections_total", "Requests refused with 429, by URL pattern.", ["route"]
)
WEBHOOK_FAILURES = Counter(
    "adiuva_webhook_failures_total", "Incoming webhooks that could not be verified or processed.", ["source", "reason"]
)
CELERY_TASKS = Counter("adiuva_celery_tasks_total", "Finished Celery tasks by outcome.", ["task", "outcome"])
REDIS_UNAVAILABLE = Counter(
    "adiuva_redis_unavailable_total", "Operations that found Redis unreachable, by where.", ["where"]
)
BODY_TOO_LARGE = Counter("adiuva_request_body_too_large_total", "Requests refused with 413 before their body was read.")
LLM_TOKENS = Counter(
    "adiuva_llm_tokens_total",
    "Tokens of metered model calls, as the provider reported them; kind is prompt, completion or cached.",
    ["model", "purpose", "tier", "kind"],
)
LLM_COST = Counter(
    "adiuva_llm_estimated_cost_usd_total",
    "Estimated cost of metered model calls (LLM_PRICES), in USD.",
    ["model", "purpose", "tier"],
)
LLM_BUDGET_REFUSALS = Counter(
    "adiuva_llm_budget_refusals_total", "Requests refused for an exhausted token budget.", ["purpose", "tier"]
)

_gauge_sources: dict[str, tuple[str, Callable[[], float]]] = {}


def gauge_source(name: str, documentation: str, read: Callable[[], float]) -> None:
    """Register a gauge read at scrape time (e.g. devices online, counted from the database)."""
    _gauge_sources[name] = (documentation, read)


# --- hooks --------------------------------------------------------------------------------------


def request_observed(*, route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUEST_SECONDS.labels(route=route, method=method, status_class=f"{status // 100}xx").observe(seconds)
    if status == 429:
        THROTTLE_REJECTIONS.labels(route=route).inc()


def tool_call_observed(*, route: str, started: float, outcome: str = "ok") -> None:
    """Record one tool call begun at ``started`` (``time.perf_counter()``); ``outcome`` is ``ok`` or
    the error's class name. A plain call rather than a context manager on the hot path: the
    generator a ``contextmanager`` builds cost as much as the observation itself."""
    # The labelled child is looked up once per (route, outcome): labels() takes a lock and checks
    # its arguments on every call, a good part of a tool call's own cost.
    child = _tool_call_children.get((route, outcome))
    if child is None:
        child = _tool_call_children[route, outcome] = TOOL_CALL_SECONDS.labels(route=route, outcome=outcome)
    child.observe(time.perf_counter() - started)


@contextlib.contextmanager
def tool_call_timer(*, route: str) -> Iterator[None]:
    """Time one tool call; the outcome label is ``ok`` or the error's class name."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        tool_call_observed(route=route, started=started, outcome=type(exc).__name__)
        raise
    tool_call_observed(route=route, started=started)


_tool_call_children: dict[tuple[str, str], Histogram] = {}


class FirstTokenClock:
    """Started with a chat request; ``tick()`` on every text chunk records only the first one."""

    def __init__(self, *, kind: str) -> None:
        self.kind = kind
        self.started = time.perf_counter()
        self.ticked = False

    def tick(self) -> None:
        if not self.ticked:
            self.ticked = True
            STREAM_FIRST_TOKEN_SECONDS.labels(kind=self.kind).observe(time.perf_counter() - self.started)


def webhook_failed(*, source: str, reason: str) -> None:
    WEBHOOK_FAILURES.labels(source=source, reason=reason).inc()


def celery_task_finished(*, task: str, outcome: str) -> None:
    CELERY_TASKS.labels(task=task, outcome=outcome).inc()


def redis_unavailable(*, where: str) -> None:
    REDIS_UNAVAILABLE.labels(where=where).inc()


def body_too_large() -> None:
    BODY_TOO_LARGE.inc()


def llm_call_metered(
    *, model: str, purpose: str, tier: str, prompt: int, completion: int, cached: int, cost_usd: float
) -> None:
    for kind, tokens in (("prompt", prompt), ("completion", completion), ("cached", cached)):
        if tokens:
            LLM_TOKENS.labels(model=model, purpose=purpose, tier=tier, kind=kind).inc(tokens)
    if cost_usd:
        LLM_COST.labels(model=model, purpose=purpose, tier=tier).inc(cost_usd)


def llm_budget_refused(*, purpose: str, tier: str) -> None:
    LLM_BUDGET_REFUSALS.labels(purpose=purpose, tier=tier).inc()


# --- Celery -------------------------------------------------------------------------------------


def connect_celery_signals() -> None:
    """Count every task's outcome in the worker that ran it."""
    from celery import signals

    def _name(sender: object) -> str:
        return getattr(sender, "name", None) or str(sender)

    signals.task_success.connect(
        lambda sender=None, **_: celery_task_finished(task=_name(sender), outcome="success"), weak=False
    )
    signals.task_failure.connect(
        lambda sender=None, **_: celery_task_finished(task=_name(sender), outcome="failure"), weak=False
    )
    signals.task_retry.connect(
        lambda sender=None, **_: celery_task_finished(task=_name(sender), outcome="retry"), weak=False
    )
    signals.task_rejected.connect(
        lambda sender=None, **_: celery_task_finished(task=_name(sender), outcome="rejected"), weak=False
    )


# --- exposition ---------------------------------------------------------------------------------


class _GaugeSourceCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (documentation, read) in _gauge_sources.items():
            try:
                value = float(read())
            except Exception:  # a broken source must not break the scrape
                logger.warning("metrics: gauge source %s failed", name, exc_info=True)
                continue
            yield GaugeMetricFamily(name, documentation, value=value)


def exposition() -> bytes:
    """Every process's samples (multiprocess files) plus the scrape-time gauges, in the text format."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_GaugeSourceCollector())
    return generate_latest(registry)
