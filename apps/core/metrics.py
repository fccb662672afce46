"""Prometheus metrics: small named hooks the rest of the code calls, and the registry the endpoint serves.

Web runs ``WEB_CONCURRENCY`` processes beside Celery workers, so metrics use prometheus-client's
multiprocess mode: every process writes its samples under ``PROMETHEUS_MULTIPROC_DIR`` (set by the
settings before this module is imported; ``runstack`` empties it at start) and the endpoint sums
them. Values that are facts of the database rather than of one process (devices online) are read
at scrape time from sources apps register with ``gauge_source``.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import contextlib
import logging
import math
import os
import threading
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
TALLY_DRIFT = Counter(
    "adiuva_tally_drift_total",
    "Nightly checks that found a tally differing from its rows (its triggers were bypassed), by source table.",
    ["source"],
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
    generator a ``contextmanager`` builds cost as much as the observation itself.

    A call from the socket's own process (``own_process``, always on the server's loop) is tallied
    in the process and written within ``TOOL_CALL_FLUSH_SECONDS`` (``tool_calls_flush``, also at
    every scrape this process serves and at exit): a multiprocess observation writes the
    histogram's file twice under a lock, about a tenth of such a call's own code. Other calls (a
    worker's loop may close right after its call) are written at once."""
    seconds = time.perf_counter() - started
    loop = None
    if route == "own_process":
        try:  # noqa: SIM105  (contextlib.suppress makes an object per call)
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop: no timer to flush a tally
    if loop is None:
        _tool_call_child(route, outcome).observe(seconds)
    else:
        _tally(route, outcome, seconds, loop)


def _tally(route: str, outcome: str, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
    global _flush_loop
    with _tally_lock:
        tally = _tallies.get((route, outcome))
        if tally is None:
            tally = _tallies[route, outcome] = [0.0] * (2 * len(_TOOL_CALL_BOUNDS))
        bucket = bisect.bisect_left(_TOOL_CALL_BOUNDS, seconds)
        tally[bucket] += 1
        tally[len(_TOOL_CALL_BOUNDS) + bucket] += seconds
        if _flush_loop is None or _flush_loop.is_closed():  # none armed, or its loop went away
            _flush_loop = loop
            loop.call_later(TOOL_CALL_FLUSH_SECONDS, tool_calls_flush)


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


def tool_calls_flush() -> None:
    """Write the tallied tool calls to the histogram: per label set, its sum and each bucket's count
    in one increment each (what as many ``observe`` calls would have written).

    prometheus-client has no public call that adds n observations at once (its maintainers point to
    a custom collector, which in multiprocess mode would be read by the scraping process alone), so
    the labelled child's own values (``_sum``, ``_buckets``) are incremented. The version is pinned;
    test_metrics holds the output equal to observe()'s and fails on any change of that shape. Should
    a version lack it all the same, the calls are written through the public ``observe``: each
    bucket's calls as that many observations of their mean (which lies in the bucket), so buckets,
    count and sum read the same, at the cost of one write per call."""
    global _flush_loop
    with _tally_lock:
        tallies = dict(_tallies)
        _tallies.clear()
        _flush_loop = None
    width = len(_TOOL_CALL_BOUNDS)
    for (route, outcome), tally in tallies.items():
        child = _tool_call_child(route, outcome)
        counts, sums = tally[:width], tally[width:]
        if _adds_in_one_increment(child):
            child._sum.inc(sum(sums))
            for bucket, count in zip(child._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)
        else:
            for bucket, (count, total) in enumerate(zip(counts, sums, strict=True)):
                if count:
                    value = _inside_bucket(total / count, bucket)
                    for _ in range(int(count)):
                        child.observe(value)


def _inside_bucket(value: float, bucket: int) -> float:
    # A mean of values in (lower, upper] lies there too, but its rounding may step just outside.
    lower = _TOOL_CALL_BOUNDS[bucket - 1] if bucket else -math.inf
    return min(max(value, math.nextafter(lower, math.inf)), _TOOL_CALL_BOUNDS[bucket])


def _adds_in_one_increment(child: Histogram) -> bool:
    """Whether the child has the values ``tool_calls_flush`` increments: a ``_sum`` and one
    ``_buckets`` value per bound (prometheus-client's Histogram since 0.4); checked once."""
    global _one_increment
    if _one_increment is None:
        buckets = getattr(child, "_buckets", None)
        _one_increment = (
            callable(getattr(getattr(child, "_sum", None), "inc", None))
            and isinstance(buckets, list)
            and len(buckets) == len(_TOOL_CALL_BOUNDS)
            and all(callable(getattr(bucket, "inc", None)) for bucket in buckets)
        )
        if not _one_increment:
            logger.warning("metrics: prometheus-client's Histogram changed shape; tool calls are written one by one")
    return _one_increment


def _tool_call_child(route: str, outcome: str) -> Histogram:
    # The labelled child is looked up once per (route, outcome): labels() takes a lock and checks
    # its arguments on every call.
    child = _tool_call_children.get((route, outcome))
    if child is None:
        child = _tool_call_children[route, outcome] = TOOL_CALL_SECONDS.labels(route=route, outcome=outcome)
    return child


def _forget_tallies_in_child() -> None:
    """A forked child starts with no tally (its parent writes its own) and no flush armed."""
    global _flush_loop, _tally_lock
    _tallies.clear()
    _flush_loop = None
    _tally_lock = threading.Lock()


TOOL_CALL_FLUSH_SECONDS = 1.0
# The histogram's upper bounds, +Inf last, as observe() picks a bucket (the first bound >= the value).
_TOOL_CALL_BOUNDS = (*(float(b) for b in _LATENCY_BUCKETS), math.inf)
_tool_call_children: dict[tuple[str, str], Histogram] = {}
# Tool calls observed on a loop and not yet written, by (route, outcome): [count per bucket...,
# sum per bucket...] (a bucket's sum lets the public fallback write observations inside it).
_tallies: dict[tuple[str, str], list[float]] = {}
_one_increment: bool | None = None  # ``_adds_in_one_increment``, once known
_tally_lock = threading.Lock()  # observed from several threads' loops (web, tests, workers)
_flush_loop: asyncio.AbstractEventLoop | None = None  # the loop whose timer will flush, if armed
os.register_at_fork(after_in_child=_forget_tallies_in_child)
atexit.register(tool_calls_flush)


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


def tally_drift_found(*, source: str) -> None:
    TALLY_DRIFT.labels(source=source).inc()


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
    tool_calls_flush()  # this process's own tallied calls are written before the files are read
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_GaugeSourceCollector())
    return generate_latest(registry)
