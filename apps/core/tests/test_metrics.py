"""The Prometheus endpoint: guarded by METRICS_TOKEN, fed by the hooks of every concern it reports."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token-0123456789"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def read() -> dict[tuple[str, tuple], float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return read


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_off_without_a_token_and_closed_to_a_wrong_one(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404

    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_request_latency_by_route_and_throttle_rejections_are_counted(api_client, scrape):
    before = scrape()

    api_client.get("/api/v1/health")
    for n in range(6):  # the test login rate is 5/min
        api_client.post("/api/v1/auth/login", {"email": f"m{n}@example.com", "password": "x"}, format="json")
    after = scrape()

    count = "adiuva_http_request_duration_seconds_count"
    labels = {"route": "/api/v1/health", "method": "GET", "status_class": "2xx"}
    assert _value(after, count, **labels) - _value(before, count, **labels) == 1
    rejected = "adiuva_throttle_rejections_total"
    assert (
        _value(after, rejected, route="/api/v1/auth/login") - _value(before, rejected, route="/api/v1/auth/login") == 1
    )


def test_devices_online_is_read_from_the_database(scrape, make_user):
    from datetime import timedelta

    from django.utils import timezone

    from apps.devices.models import Device

    user = make_user("metrics-device@example.com")
    now = timezone.now()
    Device.objects.create(
        user=user,
        device_id="d1",
        channel_name="c1",
        is_online=True,
        last_seen_at=now,
        first_seen_at=now,
        lease_expires_at=now + timedelta(minutes=5),
    )

    assert _value(scrape(), "adiuva_devices_online") == 1


def test_webhook_failures_and_celery_outcomes_are_counted(api_client, scrape):
    from apps.storage.tasks import abort_stale_uploads_task

    before = scrape()

    api_client.post("/api/v1/billing/webhook", b"{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=x")
    abort_stale_uploads_task.apply()
    after = scrape()

    failures = "adiuva_webhook_failures_total"
    assert (
        _value(after, failures, source="stripe", reason="signature")
        - _value(before, failures, source="stripe", reason="signature")
        == 1
    )
    tasks = "adiuva_celery_tasks_total"
    labels = {"task": "storage.abort_stale_uploads", "outcome": "success"}
    assert _value(after, tasks, **labels) - _value(before, tasks, **labels) == 1


def test_tool_call_latency_and_first_token_hooks_record_once(scrape):
    before = scrape()

    async def call() -> None:
        with metrics.tool_call_timer(route="other_process"):
            await asyncio.sleep(0)

    asyncio.run(call())
    clock = metrics.FirstTokenClock(kind="socket")
    clock.tick()
    clock.tick()  # only the first chunk counts
    after = scrape()

    tool = "adiuva_tool_call_duration_seconds_count"
    assert (
        _value(after, tool, route="other_process", outcome="ok")
        - _value(before, tool, route="other_process", outcome="ok")
        == 1
    )
    first = "adiuva_stream_first_token_seconds_count"
    assert _value(after, first, kind="socket") - _value(before, first, kind="socket") == 1


def _tool_call_samples(samples: dict, route: str) -> dict[str, float]:
    """The tool-call histogram of one route/outcome: cumulative buckets by ``le``, ``count`` and ``sum``."""
    found = {}
    for (name, pairs), value in samples.items():
        labels = dict(pairs)
        ours = labels.get("route") == route and labels.get("outcome") == "ok"
        if ours and name.startswith("adiuva_tool_call_duration_seconds"):
            found[labels.get("le") or name.rsplit("_", 1)[1]] = value
    return found


def test_tool_calls_tallied_on_a_loop_read_as_the_histogram_observe_writes(scrape):
    _assert_tallied_calls_read_as_observed(scrape)


def test_without_the_histogram_internals_tallied_calls_are_written_through_observe_and_read_the_same(
    scrape, monkeypatch
):
    # given a prometheus-client whose Histogram lacks the values the flush increments
    monkeypatch.setattr(metrics, "_one_increment", False)

    # then tallied calls still read as observe() writes them (through observe itself)
    _assert_tallied_calls_read_as_observed(scrape)


def test_the_flush_finds_the_histogram_internals_of_the_pinned_prometheus_client(monkeypatch):
    # given the version the flush's one-increment writes were checked against
    monkeypatch.setattr(metrics, "_one_increment", None)
    child = metrics._tool_call_child("own_process", "ok")

    # then it is the installed one, and its labelled child has them: on any other version, read
    # prometheus_client/metrics.py's Histogram (observe, _child_samples) again before moving the pin
    assert importlib.metadata.version("prometheus_client") == "0.26.0", "re-check tool_calls_flush"
    assert metrics._adds_in_one_increment(child), "Histogram no longer has _sum / _buckets: re-check tool_calls_flush"


def test_a_buckets_mean_stays_inside_the_bucket_when_its_rounding_steps_out():
    # given three calls of exactly 0.1 s (a bound), whose sum is 0.30000000000000004
    bucket = metrics._TOOL_CALL_BOUNDS.index(0.1)
    mean = (0.1 + 0.1 + 0.1) / 3
    assert mean > 0.1

    # then the fallback observes them in their own bucket
    assert metrics._inside_bucket(mean, bucket) == 0.1
    assert metrics._inside_bucket(0.05, bucket) > 0.05  # at the lower bound: just above it


def _assert_tallied_calls_read_as_observed(scrape) -> None:
    # given calls of many durations, some from the socket's own process on a loop (tallied, then
    # written together) and the same durations observed one by one on the other route
    durations = [0.0001, 0.003, 0.007, 0.02, 0.2, 0.2, 0.7, 3.0, 45.0, 100.0]
    before = scrape()

    async def calls() -> None:
        # Each call's start is taken just before it: one start for all let the time spent between
        # the calls add up in the sums (10 ms once under a loaded full run, past the tolerance).
        for seconds in durations:
            metrics.tool_call_observed(route="own_process", started=time.perf_counter() - seconds)
            metrics.tool_call_observed(route="other_process", started=time.perf_counter() - seconds)

    # when the loop ends before its flush timer ran
    asyncio.run(calls())
    after = scrape()

    # then the scrape holds every tallied call, in the buckets, count and sum observe() gives
    def delta(route: str) -> dict[str, float]:
        old = _tool_call_samples(before, route)
        return {key: value - old.get(key, 0.0) for key, value in _tool_call_samples(after, route).items()}

    tallied, observed = delta("own_process"), delta("other_process")
    assert tallied["count"] == len(durations)
    assert tallied["+Inf"] == len(durations)
    assert tallied["0.005"] == 2
    assert tallied["60.0"] == len(durations) - 1
    assert tallied["sum"] == pytest.approx(sum(durations), abs=0.01)
    assert tallied.keys() == observed.keys()
    for key, value in observed.items():
        assert tallied[key] == pytest.approx(value, abs=0.01), key


def test_tool_calls_tallied_on_a_loop_are_written_by_its_timer_without_a_scrape(monkeypatch):
    # given a short flush interval
    monkeypatch.setattr(metrics, "TOOL_CALL_FLUSH_SECONDS", 0.05)

    def written() -> float:  # what another process's scrape reads: the files alone, no flush here
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        labels = {"route": "own_process", "outcome": "DeviceTimeoutError"}
        return registry.get_sample_value("adiuva_tool_call_duration_seconds_count", labels) or 0.0

    before = written()

    async def call_then_wait() -> float:
        metrics.tool_call_observed(route="own_process", started=time.perf_counter(), outcome="DeviceTimeoutError")
        pending = written()
        await asyncio.sleep(0.5)
        return pending

    # when a call is observed and the loop runs on
    pending = asyncio.run(call_then_wait())

    # then it was not written at once, and was written by the loop's timer
    assert pending == before
    assert written() == before + 1
