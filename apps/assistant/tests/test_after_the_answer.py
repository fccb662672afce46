"""The work after a socket turn's last text: the episode's write runs after ``stream_end`` is sent,
and is not lost when the socket closes meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from apps.assistant.testing.scripted_openai import text
from apps.core.testing.held_transactions import held_transaction
from apps.devices.tests.conftest import wait_until
from apps.memory.models import Episode

from .conftest import home, types

pytestmark = pytest.mark.django_db(transaction=True)


def memory_locked(user) -> contextlib.AbstractAsyncContextManager[Callable[[], None]]:
    """Hold the user's memory write lock in a transaction of a thread of its own, as a long memory
    write would; yields ``release``."""
    from apps.memory.retention import user_memory_lock

    return held_transaction(lambda: user_memory_lock(user_id=user.id), what="the memory lock")


async def episodes_stored(user) -> int:
    """Counted on a connection of its own: the shared sync thread may be the one waiting on the lock."""

    def count() -> int:
        from django.db import connection

        try:
            return Episode.objects.filter(user=user).count()
        finally:
            connection.close()

    return await asyncio.to_thread(count)


async def test_stream_end_goes_out_while_the_episode_is_still_being_stored(devices, user, llm):
    # given a user whose memory another transaction holds, so the episode's write waits
    client = await devices(user)
    llm.script(text("Your launch is on Friday."))
    async with memory_locked(user) as release:
        # when
        frames = await home(client, "when is the launch?")

        # then the answer ended without waiting for the write
        assert types(frames)[-2:] == ["stream_text", "stream_end"]
        assert await episodes_stored(user) == 0
        release()

    # and the episode is stored once the lock goes
    await wait_until(lambda: episodes_stored(user), timeout=10)
    assert await episodes_stored(user) == 1


async def test_the_episode_is_stored_when_the_socket_closes_after_stream_end(devices, user, llm):
    # given a turn answered while its episode's write waits
    client = await devices(user)
    llm.script(text("Noted."))
    async with memory_locked(user) as release:
        frames = await home(client, "remember the venue")
        assert types(frames)[-1] == "stream_end"

        # when the socket closes before the write could finish
        await client.close()
        release()

    # then the write ran to its end all the same
    await wait_until(lambda: episodes_stored(user), timeout=10)
    assert await episodes_stored(user) == 1


async def test_the_next_turn_does_not_wait_for_the_episode_still_being_stored(devices, user, llm):
    # given a turn answered while its episode's write waits for the memory lock
    client = await devices(user)
    llm.script(text("First."), text("Second."))
    async with memory_locked(user) as release:
        frames = await home(client, "remember the venue")
        assert types(frames)[-1] == "stream_end"

        # when the user asks again before the write could finish
        frames = await home(client, "and the date?")

        # then the second answer comes all the same (its budget check did not queue behind the write)
        assert types(frames)[-2:] == ["stream_text", "stream_end"]
        assert await episodes_stored(user) == 0
        release()

    async def both_stored() -> bool:
        return await episodes_stored(user) == 2

    await wait_until(both_stored, timeout=10)
