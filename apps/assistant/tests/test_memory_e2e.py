"""Memory around a chat turn: what the model is shown before it, what is stored after it."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from apps.assistant.testing.scripted_openai import embed_text, text, tool_call
from apps.memory.selectors import core_memory_dict, episodes_recent
from apps.memory.services import associative_memory_add, core_memory_set, pattern_upsert

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


async def test_after_the_turn_the_episode_is_stored_and_shown_next_time(devices, user, llm):
    # given
    client = await devices(user)
    llm.script(text("Your launch is on Friday."), text("Sure."))

    # when two turns follow each other
    await home(client, "when is the launch?")
    await home(client, "thanks")

    # then the first exchange is an episode, embedded, and the second prompt recalls it
    episodes = await sync_to_async(episodes_recent)(user_id=user.id)
    assert any("when is the launch?" in e.summary and "Friday" in e.summary for e in episodes)
    assert "Your launch is on Friday." in llm.chat_requests()[1].system_prompt
    embedded = [r.body["input"][0] for r in llm.embedding_requests()]
    assert any("when is the launch?" in item and "Friday" in item for item in embedded)


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
