"""redis-py's asyncio commands sent under ``asyncio.timeout`` on CPython 3.11, as ``asyncio.wait_for``
sends them on 3.12 and later.

redis-py sends each command under ``asyncio.wait_for(send, socket_timeout)`` when its connection has a
socket timeout, and redis-py 8 gives every connection one (5 s unless set). On CPython 3.11
``wait_for``:

- runs the send in a Task of its own, which starts at the loop's next turn. Every command of every
  asyncio client paid for that Task and that turn: the throttle's hit, presence and stream-log writes,
  and every channel-layer send and receive. A ``PING`` cost 10-15 µs more CPU with it (63-77 µs
  against 53-61 µs), up to a fifth of the whole round trip;
- drops a cancellation that arrives in the same turn as the send finishes, and returns the send's
  result instead. The cancelled task then carries on, for example into channels-redis' blocking pop
  (README, "Cancellations lost in a Redis send"). CPython 3.12 rewrote ``wait_for`` on
  ``asyncio.timeout``, which makes no Task and keeps the cancellation.

``install()`` (the core app's ``ready``) replaces ``AbstractConnection.send_packed_command`` with the
same steps under ``asyncio.timeout``, on CPython before 3.12 only. A test pins the replaced method's
source: when a redis-py upgrade changes it, that test fails and the copy here is read again.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable

from redis import exceptions as redis_errors
from redis.asyncio.connection import AbstractConnection

LIBRARY_SEND = AbstractConnection.send_packed_command


async def send_packed_command(
    self: AbstractConnection, command: bytes | str | Iterable[bytes], check_health: bool = True
) -> None:
    """``AbstractConnection.send_packed_command`` (redis-py 8.1), the write awaited under
    ``asyncio.timeout`` instead of in a ``wait_for`` Task; the same errors, the connection dropped on
    any failure as there."""
    if not self.is_connected:
        await self.connect_check_health(check_health=False)
    if check_health:
        await self.check_health()

    try:
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        writer = self._writer
        assert writer is not None  # connected above
        async with asyncio.timeout(self.socket_timeout or None):
            writer.writelines(command)
            await writer.drain()
    except TimeoutError:  # asyncio.timeout's own: the write outlasted the socket timeout
        await self.disconnect(nowait=True)
        raise redis_errors.TimeoutError("Timeout writing to socket") from None
    except OSError as e:
        await self.disconnect(nowait=True)
        if len(e.args) == 1:
            err_no, errmsg = "UNKNOWN", e.args[0]
        else:
            err_no = e.args[0]
            errmsg = e.args[1]
        raise redis_errors.ConnectionError(f"Error {err_no} while writing to socket. {errmsg}.") from e
    except BaseException:
        # As redis-py: a send cut off (a cancellation) leaves the stream in an unknown state.
        await self.disconnect(nowait=True)
        raise


def install() -> None:
    """Send redis-py's asyncio commands under ``asyncio.timeout`` (CPython before 3.12)."""
    if sys.version_info < (3, 12):
        AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
