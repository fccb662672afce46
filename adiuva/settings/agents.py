"""Agents: scheduled runs (lease, dispatcher), the journey, local and cloud run execution, the outbox."""

from __future__ import annotations

from .environment import env

# AGENTS (scheduled agent runs, the dispatcher, the journey)
# ------------------------------------------------------------------------------
# A running run is owned by its executor until its lease ends; the executor renews it and the
# sweeper (Celery beat, every minute) marks runs whose lease ran out as ``error``.
AGENTS_RUN_LEASE_SECONDS = env.int("AGENTS_RUN_LEASE_SECONDS", default=600)
# The dispatch tick (Celery beat, every 10 s) claims due configs in batches of this size, and
# stops after this many seconds so ticks never pile up (the next tick continues).
AGENTS_DISPATCH_BATCH_SIZE = env.int("AGENTS_DISPATCH_BATCH_SIZE", default=500)
AGENTS_DISPATCH_TIME_BUDGET = env.float("AGENTS_DISPATCH_TIME_BUDGET", default=8.0)
# Journey sessions (Django cache / Redis) expire after this many idle seconds.
AGENTS_JOURNEY_TTL_SECONDS = env.int("AGENTS_JOURNEY_TTL_SECONDS", default=1800)
AGENTS_JOURNEY_MAX_MESSAGE_CHARS = env.int("AGENTS_JOURNEY_MAX_MESSAGE_CHARS", default=2000)

# Run execution (local and cloud runs, the delivery outbox).
# What one local run accepts from the device; files past a limit are skipped and reported in the run's errors.
AGENTS_FILE_MAX_BYTES = env.int("AGENTS_FILE_MAX_BYTES", default=1024 * 1024)
AGENTS_RUN_MAX_BYTES = env.int("AGENTS_RUN_MAX_BYTES", default=20 * 1024 * 1024)
AGENTS_RUN_MAX_FILES = env.int("AGENTS_RUN_MAX_FILES", default=2000)
# Characters of one file / message shown to the extraction model (longer text is cut and reported).
AGENTS_EXTRACTION_MAX_CHARS = env.int("AGENTS_EXTRACTION_MAX_CHARS", default=20000)
# Files of a local run asked in one extraction request when their texts, each within the characters
# above, together fit AGENTS_EXTRACTION_REQUEST_MAX_CHARS (1: a request per file). 8 cut the worker's
# CPU per 1 KB file from ~1.7 to ~0.65 ms in the bench; 16 or 32 saved little more, with fewer
# requests in flight. Files sharing a request can sway each other's extraction (an instruction in one
# reaches the model beside its siblings of the same folder); see the README.
AGENTS_EXTRACTION_FILES_PER_REQUEST = env.int("AGENTS_EXTRACTION_FILES_PER_REQUEST", default=8)
# 90,000 characters (~22k tokens, well within any current chat model's context) let eight files of
# 10 KB share a request, as eight of 1 KB do; the same text costs the same tokens, with one system
# prompt instead of eight. Batching is spread over the AGENTS_EXTRACTION_CONCURRENCY slots (a few
# files go out as several requests side by side): a model answers a request's files one after another.
AGENTS_EXTRACTION_REQUEST_MAX_CHARS = env.int("AGENTS_EXTRACTION_REQUEST_MAX_CHARS", default=90000)
# Files / messages extracted at once by one run, and outbox inserts in flight to one device.
AGENTS_EXTRACTION_CONCURRENCY = env.int("AGENTS_EXTRACTION_CONCURRENCY", default=4)
AGENTS_DELIVERY_CONCURRENCY = env.int("AGENTS_DELIVERY_CONCURRENCY", default=8)
# A local run ends (partial / error) when the device sends nothing for this long, or drops off.
AGENTS_DATA_IDLE_TIMEOUT = env.float("AGENTS_DATA_IDLE_TIMEOUT", default=120.0)
AGENTS_DEVICE_CHECK_INTERVAL = env.float("AGENTS_DEVICE_CHECK_INTERVAL", default=2.0)
# How often a working run renews its lease (the sweeper errors runs whose lease ran out).
AGENTS_RUN_LEASE_RENEW_INTERVAL = env.float("AGENTS_RUN_LEASE_RENEW_INTERVAL", default=30.0)
# Messages fetched per cloud run.
AGENTS_CLOUD_MAX_MESSAGES = env.int("AGENTS_CLOUD_MAX_MESSAGES", default=50)
# Delivered outbox rows (payload already dropped, id kept so a re-proposed item is a no-op) live this long.
AGENTS_OUTBOX_RETAIN_DAYS = env.int("AGENTS_OUTBOX_RETAIN_DAYS", default=90)
