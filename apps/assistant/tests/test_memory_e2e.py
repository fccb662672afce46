"""Memory around a chat turn: what the model is shown before it, what is stored after it."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from apps.assistant.testing.scripted_openai import embed_text, failure, text, tool_call
from apps.devices.tests.conftest import wait_until
from apps.memory.learning import LearningFailed, episode_learn
from apps.memory.models import Episode
from apps.memory.selectors import core_memory_dict
from apps.memory.services import associative_memory_add, core_memory_set, episode_record, pattern_upsert
from apps.memory.tasks import episode_summarise_task, memory_learn_task

from .conftest import home, types

pytestmark = pytest.mark.django_db(transaction=True)


async def test_core_associative_episodes_and_strong_patterns_reach_the_models_prompt(devices, user, llm):
    # given memories of every kind, one relevant to the message and one not
    await sync_to_async(core_memory_set)(user_id=user.id, key="timezone", value="Europe/Rome")
    await sync_to_async(associative_memory_add)(
        user_id=user.id, content="User drinks espresso coffee every morning", embedding=embed_text("espresso coffee")
    )
    await sync_to_async(associative_memory_add)(
        user_id=user.id, content="Quarterly VAT filing is due", embedding=embed_text("quarterly vat tax filing")
    )
    await sync_to_async(pattern_upsert)(user_id=user.id, description="Plans the week on Mondays", confidence=0.9)
    await sync_to_async(pattern_upsert)(user_id=user.id, description="Sometimes works late", confidence=0.4)
    client = await devices(user)
    llm.script(text("Noted."))

    # when
    await home(client, "which coffee do I like?")

    # then
    prompt = llm.chat_requests()[0].system_prompt
    assert "Europe/Rome" in prompt
    assert "User drinks espresso coffee every morning" in prompt
    if "VAT" in prompt:  # top-k exceeds the two memories, so both may appear: nearest first
        assert prompt.index("espresso") < prompt.index("VAT")
    assert "Plans the week on Mondays" in prompt
    assert "Sometimes works late" not in prompt
    assert llm.embedding_requests()[0].body["input"] == ["which coffee do I like?"]


def _pending_episodes(user) -> list[Episode]:
    return list(Episode.objects.filter(user=user, summary_encrypted__isnull=True).order_by("created_at"))


async def _stored_pending_episode(user) -> Episode:
    """The turn's one pending episode: it is written after ``stream_end`` goes out, so wait for it."""
    stored = sync_to_async(Episode.objects.filter(user=user).exists)
    await wait_until(stored)
    [episode] = await sync_to_async(_pending_episodes)(user)
    return episode


async def test_a_turn_is_summarised_off_the_path_and_its_summary_and_facts_reach_the_next_prompt(
    devices, user, llm, settings
):
    # given a turn: the user gets the answer; the episode waits for its summary
    client = await devices(user)
    llm.script(text("Your launch is on Friday."))
    frames = await home(client, "when is the launch?")
    assert types(frames)[-1] == "stream_end"
    episode = await _stored_pending_episode(user)
    assert len(llm.chat_requests()) == 1  # nothing else ran on the turn's path

    # when the worker runs the summary task: the subagent model answers the structured digest
    digest = {
        "summary": "The user asked when the product launch is; it is on Friday.",
        "facts": ["Launch day is Friday"],
    }
    llm.script(text(json.dumps(digest)))
    assert await sync_to_async(lambda: episode_summarise_task.apply(args=[str(episode.id)]).get())() is True

    # then the summariser was the subagent model with a JSON schema, and the next prompt recalls both
    summariser = llm.chat_requests()[1]
    assert summariser.body["model"] == settings.ASSISTANT_SUBAGENT_MODEL
    assert summariser.body["response_format"]["type"] == "json_schema"
    llm.script(text("Sure."))
    await home(client, "anything about the launch day?")
    prompt = llm.chat_requests()[-1].system_prompt
    assert "it is on Friday" in prompt
    assert "Launch day is Friday" in prompt


async def test_a_failing_summariser_leaves_the_answer_intact_and_the_episode_pending(devices, user, llm, settings):
    # given a turn whose summary the model fails to write
    settings.ASSISTANT_LLM_MAX_RETRIES = 0
    client = await devices(user)
    llm.script(text("Here is your answer."), failure(500))
    frames = await home(client, "plan my day")
    episode = await _stored_pending_episode(user)

    # when the summary is attempted
    with pytest.raises(LearningFailed):
        await sync_to_async(episode_learn)(episode_id=episode.id)

    # then the user's answer was unaffected and the episode stays pending, to be retried
    assert "Here is your answer." in "".join(f.get("text", "") or f.get("chunk", "") for f in frames)
    assert types(frames)[-1] == "stream_end"
    [still_pending] = await sync_to_async(_pending_episodes)(user)
    assert still_pending.summary_attempts == 1


async def test_patterns_from_the_periodic_task_reach_the_next_prompt_above_the_threshold(devices, user, llm):
    # given summarised episodes
    await sync_to_async(episode_record)(user_id=user.id, session_id="s", summary="Reviewed invoices on Friday.")
    await sync_to_async(episode_record)(user_id=user.id, session_id="s", summary="Reviewed invoices again on Friday.")
    patterns = {
        "patterns": [
            {"description": "Reviews invoices on Fridays", "confidence": 0.8},
            {"description": "Maybe dislikes calls", "confidence": 0.3},
        ]
    }
    llm.script(text(json.dumps(patterns)))

    # when Beat's periodic task runs
    result = await sync_to_async(lambda: memory_learn_task.apply().get())()

    # then both are stored and only the confident one is in the next prompt
    assert result["patterns"] == 2
    client = await devices(user)
    llm.script(text("Ok."))
    await home(client, "hello")
    prompt = llm.chat_requests()[-1].system_prompt
    assert "Reviews invoices on Fridays" in prompt
    assert "Maybe dislikes calls" not in prompt


async def test_update_core_memory_tool_stores_a_preference(devices, user, llm):
    # given
    client = await devices(user)
    llm.script(tool_call("update_core_memory", {"key": "language", "value": "Italian"}), text("Got it."))

    # when
    frames = await home(client, "please always answer in Italian")

    # then
    assert types(frames)[-1] == "stream_end"
    assert (await sync_to_async(core_memory_dict)(user_id=user.id)) == {"language": "Italian"}


async def test_one_users_memory_never_reaches_anothers_prompt(devices, make_user, llm):
    # given Bob's memory
    alice, bob = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    await sync_to_async(core_memory_set)(user_id=bob.id, key="secret", value="bob-private-value")
    client = await devices(alice)
    llm.script(text("Hi."))

    # when Alice chats
    await home(client, "what do you know about me? secret")

    # then
    assert "bob-private-value" not in llm.chat_requests()[0].system_prompt
