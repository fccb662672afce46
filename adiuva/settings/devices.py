"""The device socket (/api/v1/ws/device): frames, tool calls, presence, server liveness, resumable streams, drain."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .environment import env

# DEVICES (the device socket /api/v1/ws/device and tool calls)
# ------------------------------------------------------------------------------
# The socket accepts the CORS allow-list below (apps/core/origins.py) plus these socket-only Origins;
# a missing Origin (desktop client) needs a valid token anyway.
DEVICE_ALLOWED_ORIGINS = env.list("DEVICE_ALLOWED_ORIGINS", default=["file://"])
DEVICE_HELLO_TIMEOUT = env.float("DEVICE_HELLO_TIMEOUT", default=5.0)
DEVICE_PING_INTERVAL = env.float("DEVICE_PING_INTERVAL", default=30.0)
DEVICE_PONG_TIMEOUT = env.float("DEVICE_PONG_TIMEOUT", default=10.0)
# last_seen is flushed (and the presence lease renewed, the session re-checked) this often, not per frame.
DEVICE_PRESENCE_FLUSH_INTERVAL = env.float("DEVICE_PRESENCE_FLUSH_INTERVAL", default=60.0)
# The app's cap on one frame (an error frame answers a bigger one; see DEVICE_WS_MAX_SIZE).
DEVICE_MAX_FRAME_BYTES = env.int("DEVICE_MAX_FRAME_BYTES", default=1024 * 1024)
# Token bucket per socket: sustained frames per second and burst; a client that keeps flooding is closed.
DEVICE_FRAME_RATE = env.float("DEVICE_FRAME_RATE", default=50.0)
DEVICE_FRAME_BURST = env.int("DEVICE_FRAME_BURST", default=200)
DEVICE_FLOOD_CLOSE_AFTER = env.int("DEVICE_FLOOD_CLOSE_AFTER", default=1000)
DEVICE_TOOL_CALL_TIMEOUT = env.float("DEVICE_TOOL_CALL_TIMEOUT", default=30.0)

# REALTIME (device rows, liveness of server processes, resumable request streams)
# ------------------------------------------------------------------------------
# Device rows per user: a new device recycles the least recently seen offline row; when all are online
# the socket is closed with 4413.
# uvicorn closes a socket (1009) that sends a frame over this many bytes (--ws-max-size in the Procfile
# and Dockerfile), before buffering it; between DEVICE_MAX_FRAME_BYTES and this, the app answers an error.
DEVICE_WS_MAX_SIZE = env.int("DEVICE_WS_MAX_SIZE", default=2 * 1024 * 1024)
# Frames uvicorn buffers per socket before it stops reading (--ws-max-queue in the Procfile and Dockerfile).
DEVICE_WS_MAX_QUEUE = env.int("DEVICE_WS_MAX_QUEUE", default=8)
# uvicorn's permessage-deflate keeps ~45 KiB of zlib state per socket; off trades bandwidth on big
# frames for that memory (read by the Procfile/Dockerfile and the test server).
DEVICE_WS_PER_MESSAGE_DEFLATE = env.bool("DEVICE_WS_PER_MESSAGE_DEFLATE", default=True)
DEVICE_MAX_PER_USER = env.int("DEVICE_MAX_PER_USER", default=20)
# Each server process (event loop) refreshes a Redis liveness key this often; it expires after the TTL,
# so a caller waiting on a device held by a dead process gets device_disconnected within ~TTL + check.
DEVICE_NODE_HEARTBEAT = env.float("DEVICE_NODE_HEARTBEAT", default=1.0)
DEVICE_NODE_TTL = env.float("DEVICE_NODE_TTL", default=3.0)
DEVICE_CALL_LIVENESS_CHECK = env.float("DEVICE_CALL_LIVENESS_CHECK", default=1.0)
# Seconds a process remembers which node holds a device it called, to publish the next call straight
# there instead of asking the presence index (0: always ask). A stale memory costs a second publish.
DEVICE_HOLDER_CACHE_SECONDS = env.float("DEVICE_HOLDER_CACHE_SECONDS", default=5.0)
# How processes seal the messages they publish to each other: "aesgcm" (AES-GCM under per-process keys,
# this release) or "fernet" (what every earlier release reads). Every process reads both, and the
# AES-GCM messages of the release before (one key per Redis key). Rolling from an earlier release,
# deploy once with "fernet" (and CHANNEL_LAYER_SEAL "fernet"), then switch both back when no process
# of it is left.
DEVICE_NODE_SEAL = env.str("DEVICE_NODE_SEAL", default="aesgcm")
if DEVICE_NODE_SEAL not in ("aesgcm", "fernet"):
    raise ImproperlyConfigured(f"DEVICE_NODE_SEAL must be aesgcm or fernet, not {DEVICE_NODE_SEAL!r}")
# Each event loop's Redis pool for presence, calls and stream logs: at most this many connections; a
# caller past it waits up to the timeout (seconds) for one instead of failing. The heartbeat has its own.
DEVICE_REDIS_POOL_SIZE = env.int("DEVICE_REDIS_POOL_SIZE", default=50)
DEVICE_REDIS_POOL_TIMEOUT = env.float("DEVICE_REDIS_POOL_TIMEOUT", default=10.0)
# Seconds a realtime Redis command (presence, stream logs, node messages) may go unanswered before it
# fails: a Redis that hangs fails a call's publish after this, not never.
DEVICE_REDIS_SOCKET_TIMEOUT = env.float("DEVICE_REDIS_SOCKET_TIMEOUT", default=10.0)
if DEVICE_REDIS_SOCKET_TIMEOUT <= 0:
    raise ImproperlyConfigured("DEVICE_REDIS_SOCKET_TIMEOUT must be a positive number of seconds")
# Threads for the socket's own database calls (session check at connect, the device row at hello and
# close), side by side instead of one after another in the process's one sync thread; keep it below
# DATABASE_POOL_MAX_SIZE, whose connections they take.
DEVICE_DB_THREADS = env.int("DEVICE_DB_THREADS", default=8)
if DEVICE_DB_THREADS < 1:
    raise ImproperlyConfigured("DEVICE_DB_THREADS must be at least 1")
# Tool calls one socket may have in flight; the next one is answered device_busy.
DEVICE_MAX_PENDING_CALLS = env.int("DEVICE_MAX_PENDING_CALLS", default=256)
# Answers to the server's own calls spend no frame budget: past this many of one socket's answer handlers
# in flight, the socket stops reading until one ends (its heartbeat waits meanwhile). Calls a socket opened
# with a frame it sent (agent_run) stay exempt up to this many; past it the oldest loses its exemption.
DEVICE_ANSWERS_IN_FLIGHT = env.int("DEVICE_ANSWERS_IN_FLIGHT", default=8)
DEVICE_OPEN_CALLS_CAP = env.int("DEVICE_OPEN_CALLS_CAP", default=64)
if DEVICE_ANSWERS_IN_FLIGHT < 1:
    raise ImproperlyConfigured("DEVICE_ANSWERS_IN_FLIGHT must be at least 1")
if DEVICE_OPEN_CALLS_CAP < 1:
    raise ImproperlyConfigured("DEVICE_OPEN_CALLS_CAP must be at least 1")
# A request's frames stay resumable this long after its stream_end; at most this many requests per user.
DEVICE_STREAM_RETAIN_SECONDS = env.int("DEVICE_STREAM_RETAIN_SECONDS", default=120)
DEVICE_STREAM_RETAIN_PER_USER = env.int("DEVICE_STREAM_RETAIN_PER_USER", default=32)
# On SIGTERM: how long running requests may go on (apps.devices.drain), and the window over which the
# moved devices' reconnect delays are spread. uvicorn's --timeout-graceful-shutdown comes after it.
DEVICE_DRAIN_DEADLINE = env.float("DEVICE_DRAIN_DEADLINE", default=25.0)
DEVICE_RECONNECT_WINDOW = env.float("DEVICE_RECONNECT_WINDOW", default=10.0)
