"""Every model call of a chat turn, its sub-agents, its memory and its summary is metered exactly,
from the usage the scripted model reports; an exhausted budget refuses the turn before any call."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter

import pytest
from asgiref.sync import sync_to_async

from apps.assistant.llm import ModelRole, chat_model
from apps.assistant.testing.scripted_openai import RecordedRequest, Usage, embed_text, embedding_tokens, text, tool_call
from apps.billing.budgets import llm_budget_override_set, llm_budgeted_async, period_resets_at
from apps.billing.metering import LlmPurpose
from apps.billing.models import LlmBudgetPeriod, LlmReservation, LlmUsage
from apps.devices.tests.conftest import wait_until
from apps.memory.models import Episode
from apps.memory.services import associative_memory_add
from apps.memory.tasks import episode_summarise_task

from .conftest import home, request, types

pytestmark = pytest.mark.django_db(transaction=True)


def dispatch(**options):
    return tool_call("task", {"description": "list the tasks", "subagent_type": "task"}, **options)


def usage_by_purpose(user) -> dict[str, tuple[int, int, int, int]]:
    """purpose → (calls, prompt, completion, cached) of the user's recorded calls."""
    totals: dict[str, list[int]] = {}
    for row in LlmUsage.objects.filter(user=user):
        entry = totals.setdefault(row.purpose, [0, 0, 0, 0])
        entry[0] += 1
        entry[1] += row.prompt_tokens
        entry[2] += row.completion_tokens
        entry[3] += row.cached_tokens
    return {
        purpose: (calls, prompt, completion, cached) for purpose, (calls, prompt, completion, cached) in totals.items()
    }


async def searchable_memory(user) -> None:
    """An associative memory (stored with its vector, nothing metered): a turn embeds its query to search it."""
    await sync_to_async(associative_memory_add)(user_id=user.id, content="Likes tea", embedding=embed_text("tea"))


def embedded_tokens(llm) -> int:
    return sum(embedding_tokens(request.body["input"]) for request in llm.embedding_requests())


async def test_a_chat_turn_meters_supervisor_subagent_and_embedding_calls_exactly(devices, user, llm):
    # given a turn of four model calls, each reporting distinctive usage
    await searchable_memory(user)
    client = await devices(user)
    llm.script(
        dispatch(usage=Usage(prompt=1000, completion=20, cached=300)),
        tool_call("list_tasks", {}, usage=Usage(prompt=700, completion=9)),
        lambda body: text(RecordedRequest("", body).last_tool_text, usage=Usage(prompt=800, completion=13, cached=100)),
        text("You have no tasks.", usage=Usage(prompt=1500, completion=40)),
    )

    # when
    frames = await home(client, "list my tasks")

    # then each call was counted once, under its purpose, from the provider's figures
    assert types(frames)[-1] == "stream_end"
    assert all(r.body.get("stream_options") == {"include_usage": True} for r in llm.chat_requests())
    by_purpose = await sync_to_async(usage_by_purpose)(user)
    assert by_purpose == {
        "chat": (2, 2500, 60, 300),
        "subagent": (2, 1500, 22, 100),
        "embedding": (1, embedded_tokens(llm), 0, 0),
    }
    assert embedded_tokens(llm) == 3  # "list my tasks"
    month = await sync_to_async(LlmBudgetPeriod.objects.get)(user=user)
    assert month.used_tokens == 2500 + 60 + 1500 + 22 + 3
    rows = await sync_to_async(list)(LlmUsage.objects.filter(user=user))
    assert {row.run_id for row in rows} == {frames[0]["request_id"]}
    assert not any(row.estimated for row in rows)
    assert await sync_to_async(LlmReservation.objects.count)() == 0


async def test_a_summary_meters_its_digest_and_its_embeddings(devices, user, llm):
    # given a turn, its episode pending
    await searchable_memory(user)
    client = await devices(user)
    llm.script(text("Your launch is on Friday.", usage=Usage(prompt=321, completion=7)))
    await home(client, "when is the launch?")
    # (the episode is written after stream_end goes out)
    await wait_until(sync_to_async(lambda: Episode.objects.filter(user=user).exists()))
    episode = await sync_to_async(Episode.objects.get)(user=user)
    chat_embeddings = embedded_tokens(llm)

    # when the worker summarises it
    digest = {"summary": "The launch is on Friday.", "facts": ["Launch day is Friday"]}
    llm.script(text(json.dumps(digest), usage=Usage(prompt=640, completion=33, cached=64)))
    assert await sync_to_async(lambda: episode_summarise_task.apply(args=[str(episode.id)]).get())() is True

    # then the digest counts as memory_summary, its embeddings (summary + one fact) as embedding
    by_purpose = await sync_to_async(usage_by_purpose)(user)
    summary_embeddings = embedding_tokens(["The launch is on Friday.", "Launch day is Friday"])
    assert summary_embeddings == 9
    assert by_purpose == {
        "chat": (1, 321, 7, 0),
        "memory_summary": (1, 640, 33, 64),
        "embedding": (2, chat_embeddings + summary_embeddings, 0, 0),
    }
    summary_row = await sync_to_async(LlmUsage.objects.get)(user=user, purpose="memory_summary")
    assert summary_row.run_id == str(episode.id)


async def test_an_exhausted_budget_refuses_the_turn_on_the_socket_before_any_model_call(devices, user, llm):
    # given no budget left
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=0, actor=None)
    client = await devices(user)

    # when
    frames = await home(client, "hello")

    # then an error frame with the renewal and the upgrade, then stream_end; the model never called
    assert types(frames) == ["error", "stream_end"]
    error = frames[0]
    assert error["code"] == "llm_budget_exhausted"
    assert error["upgrade_tier"] == "pro"
    assert error["resets_at"].endswith("T00:00:00Z")
    assert llm.requests == []


async def test_a_cancelled_stream_is_counted_once(devices, user, llm):
    # given a long answer the user cancels after its first text
    await searchable_memory(user)
    client = await devices(user)
    llm.script(text("word " * 400, chunk_size=5, chunk_delay=0.01, usage=Usage(prompt=5000, completion=400)))

    # when
    frames = await request(client, {"type": "home_request", "message": "write a lot"}, cancel_after="stream_text")

    # then the call is one row: what the provider reported if the stream was read to its end before
    # the cancel reached it, else our estimate, marked so, from what was received
    assert frames[-1].get("cancelled") is True
    chat_rows = LlmUsage.objects.filter(user=user, purpose="chat")
    await wait_until(sync_to_async(chat_rows.exists), timeout=15)  # recorded beside the cancellation
    [row] = await sync_to_async(list)(chat_rows)
    if row.estimated:
        assert 1 <= row.completion_tokens < 400
        assert row.prompt_tokens > 0
    else:
        assert (row.prompt_tokens, row.completion_tokens) == (5000, 400)
    assert Counter(r.purpose for r in await sync_to_async(list)(LlmUsage.objects.filter(user=user))) == {
        "chat": 1,
        "embedding": 1,
    }


async def test_a_stream_a_cancelled_turn_left_unclosed_is_counted_when_the_turn_ends(user, llm):
    # given a turn that read the first text of a long answer and then let go of the stream without
    # closing it: a turn cancelled between two chunks leaves the generators reading the stream to the
    # garbage collector, which may come much later (or, here, never: the stream is still referenced)
    llm.script(text("word " * 400, chunk_size=5, chunk_delay=0.01, usage=Usage(prompt=5000, completion=400)))
    stream = chat_model(ModelRole.SUPERVISOR).astream("write a lot")
    try:
        # when the turn ends
        async with llm_budgeted_async(user_id=user.id, purpose=LlmPurpose.CHAT, run_id="turn1", defer_records=True):
            await anext(stream)

        # then the call was stored with the turn: our estimate from what was read, marked so
        [row] = await sync_to_async(list)(LlmUsage.objects.filter(user=user))
        assert (row.purpose, row.run_id, row.estimated) == ("chat", "turn1", True)
        assert 1 <= row.completion_tokens < 400
    finally:
        await stream.aclose()
    # and closing the stream afterwards does not count it again
    assert await sync_to_async(LlmUsage.objects.filter(user=user).count)() == 1


async def test_a_turn_cancelled_again_while_it_stores_its_calls_still_stores_them(user, llm):
    # given a turn reading a long answer, cancelled, while the thread that stores its calls is busy,
    # so the store waits its turn; then cancelled again (a repeated cancel frame, the socket closing)
    llm.script(text("word " * 400, chunk_size=5, chunk_delay=0.01, usage=Usage(prompt=5000, completion=400)))
    stream = chat_model(ModelRole.SUPERVISOR).astream("write a lot")
    reading = asyncio.Event()

    async def turn() -> None:
        async with llm_budgeted_async(user_id=user.id, purpose=LlmPurpose.CHAT, run_id="turn1", defer_records=True):
            await anext(stream)
            reading.set()
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(turn())
    try:
        await reading.wait()
        busy = threading.Event()
        occupied = asyncio.ensure_future(sync_to_async(busy.wait)())  # the one thread sync_to_async shares
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0.1)  # the turn ends and asks for its calls to be stored
        # the store waits behind the busy thread
        assert not occupied.done()
        assert not task.done()

        # when it is cancelled again before the store began
        task.cancel()
        busy.set()
        await occupied
        with contextlib.suppress(asyncio.CancelledError):
            await task

        # then the call was stored all the same (our estimate, marked so), and the hold released
        [row] = await sync_to_async(list)(LlmUsage.objects.filter(user=user))
        assert (row.purpose, row.run_id, row.estimated) == ("chat", "turn1", True)
        assert not await sync_to_async(LlmReservation.objects.filter(user_id=user.id).exists)()
    finally:
        await stream.aclose()


async def test_a_turn_whose_tool_call_times_out_is_still_counted_once_per_call(devices, user, llm, settings):
    # given a device that never answers tool calls
    settings.ASSISTANT_TOOL_TIMEOUT = 0.3
    await searchable_memory(user)
    client = await devices(user)

    async def never(call):
        return None

    client.tool_handler = never
    llm.script(
        dispatch(usage=Usage(prompt=900, completion=17)),
        tool_call("list_tasks", {}, usage=Usage(prompt=600, completion=5)),
        text("The device did not answer.", usage=Usage(prompt=650, completion=8)),
        text("Your device did not answer in time.", usage=Usage(prompt=1100, completion=12, cached=512)),
    )

    # when
    frames = await home(client, "list my tasks")

    # then
    assert frames[-2]["code"] == "device_timeout"
    by_purpose = await sync_to_async(usage_by_purpose)(user)
    assert by_purpose == {
        "chat": (2, 2000, 29, 512),
        "subagent": (2, 1250, 13, 0),
        "embedding": (1, 3, 0, 0),
    }


async def test_a_turn_that_crosses_80_percent_sends_one_usage_notice_to_a_capable_socket(devices, user, llm):
    # given a 1,000-token month and a socket that understands usage_notice
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=1000, actor=None)
    await searchable_memory(user)
    client = await devices(user, capabilities=["usage_notice"])
    llm.script(
        text("Noted.", usage=Usage(prompt=850, completion=10)),
        text("Noted again.", usage=Usage(prompt=20, completion=5)),
    )

    # when a turn takes the month past 80 %, and another follows
    await home(client, "remember the launch")
    await wait_until(lambda: bool(client.notices), timeout=10)
    await home(client, "and the venue")

    # then one notice for the period, with the month's figures
    month = await sync_to_async(LlmBudgetPeriod.objects.get)(user=user)
    assert len(client.notices) == 1
    notice = client.notices[0]
    assert (notice["used"], notice["budget"]) == (850 + 10 + embedding_tokens(["remember the launch"]), 1000)
    assert month.used_tokens > notice["used"]  # the second turn counted, but told nothing new
    assert notice["resets_at"] == period_resets_at(month.period).isoformat()
