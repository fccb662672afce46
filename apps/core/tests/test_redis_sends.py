"""redis-py's asyncio sends under ``asyncio.timeout`` (apps.core.redis_sends): a cancellation that
arrives as a send finishes is kept, a write that outlasts the socket timeout fails as redis-py's did,
and the method replaced is still the one copied."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import sys

import pytest
import redis.asyncio as aioredis
from django.conf import settings
from redis import exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection

from apps.core import redis_sends

PING = b"*1\r\n$4\r\nPING\r\n"
# sha256 of the source of redis-py 8.1's AbstractConnection.send_packed_command.
REDIS_PY_8_1_SEND = "baaeabd916209157db40455f034a0bac6fb3e2db902271313e0702bcbc678321"


async def _connected(**options) -> tuple[aioredis.Redis, AbstractConnection]:
    client = aioredis.Redis.from_url(str(settings.CACHES["default"]["LOCATION"]), **options)
    connection = await client.connection_pool.get_connection()
    return client, connection


async def test_a_cancellation_that_arrives_as_a_send_finishes_stops_the_task():
    # given a task sending a command on a connection with a socket timeout (redis-py 8 gives every
    # connection one), cancelled in the very turn its write is drained
    client, connection = await _connected(socket_timeout=5)
    reached: list[str] = []
    real_drain = connection._writer.drain

    async def drained_then_cancelled() -> None:
        await real_drain()
        sender.cancel()

    connection._writer.drain = drained_then_cancelled

    async def sends_then_reads() -> None:
        await connection.send_packed_command(PING, check_health=False)
        reached.append("sent")
        await asyncio.sleep(0.2)  # the next wait, a reply's read in redis-py
        reached.append("carried on past its cancellation")

    # when it runs
    sender = asyncio.ensure_future(sends_then_reads())
    outcome = await asyncio.gather(sender, return_exceptions=True)

    # then the cancellation stops it at its next wait (CPython 3.11's wait_for returned the send's
    # result instead, and the task carried on)
    assert isinstance(outcome[0], asyncio.CancelledError)
    assert "carried on past its cancellation" not in reached
    await connection.disconnect()
    await client.aclose()


async def test_a_write_that_outlasts_the_socket_timeout_is_a_redis_timeout_and_drops_the_connection():
    # given a connection whose writes never drain (a Redis that stopped reading)
    client, connection = await _connected(socket_timeout=0.05)

    async def never_drains() -> None:
        await asyncio.sleep(3600)

    connection._writer.drain = never_drains

    # when a command is sent, then it fails as redis-py's own send failed, and the connection is closed
    with pytest.raises(redis_errors.TimeoutError, match="Timeout writing to socket"):
        await connection.send_packed_command(PING, check_health=False)
    assert not connection.is_connected
    await client.aclose()


async def test_commands_still_answer():
    client = aioredis.Redis.from_url(str(settings.CACHES["default"]["LOCATION"]), socket_timeout=5)
    assert await client.ping() is True
    assert await client.echo("adiuva") == b"adiuva"
    await client.aclose()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12's wait_for keeps cancellations: nothing replaced")
def test_the_core_app_sends_under_asyncio_timeout():
    assert AbstractConnection.send_packed_command is redis_sends.send_packed_command


def test_the_replaced_method_is_the_one_copied():
    # redis_sends.send_packed_command is redis-py 8.1's with one change: when this fails, redis-py
    # changed its send; read the new one and copy it again under asyncio.timeout.
    source = inspect.getsource(redis_sends.LIBRARY_SEND)
    assert "asyncio.wait_for(" in source
    assert hashlib.sha256(source.encode()).hexdigest() == REDIS_PY_8_1_SEND
