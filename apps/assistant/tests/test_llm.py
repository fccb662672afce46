"""The LLM factory reads its configuration from settings and says what to set when there is none."""

from __future__ import annotations

import array
import asyncio

import openai
import pytest

from apps.assistant.embeddings import text_embed
from apps.assistant.event_stream import DecodedEventStream
from apps.assistant.llm import CoalescingChunkStream, ModelRole, chat_model, embeddings_model, loop_embeddings_model
from apps.assistant.testing import scripted_openai
from apps.assistant.testing.scripted_openai import Reply, ScriptedOpenAI, ToolCall, failure
from apps.core.errors import ApplicationError


def test_unconfigured_llm_raises_llm_not_configured_naming_the_variables(settings):
    # given
    settings.OPENAI_API_KEY = ""
    # when
    with pytest.raises(ApplicationError) as caught:
        chat_model(ModelRole.SUPERVISOR)
    # then
    assert caught.value.code == "llm_not_configured"
    assert caught.value.status == 503
    assert "OPENAI_API_KEY" in caught.value.message
    assert "OPENAI_BASE_URL" in caught.value.message


def test_models_use_the_configured_endpoint_and_names(settings):
    # given
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    settings.ASSISTANT_SUPERVISOR_MODEL = "big-model"
    settings.ASSISTANT_SUBAGENT_MODEL = "small-model"
    settings.ASSISTANT_EMBEDDING_MODEL = "embed-model"
    # when
    supervisor, subagent, embeddings = (
        chat_model(ModelRole.SUPERVISOR),
        chat_model(ModelRole.SUBAGENT),
        embeddings_model(),
    )
    # then
    assert (supervisor.model_name, subagent.model_name, embeddings.model) == ("big-model", "small-model", "embed-model")
    assert str(supervisor.openai_api_base) == "http://127.0.0.1:9/v1"


async def test_text_embed_returns_1536_floats_from_the_endpoint(settings):
    # given
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        # when
        vector = await text_embed(text="hello world")
        # then
        assert len(vector) == 1536
        assert server.embedding_requests()[0].body["input"] == ["hello world"]


@pytest.mark.parametrize("as_base64", [True, False], ids=["base64", "numbers"])
async def test_text_embed_reads_the_vector_in_either_form_a_server_answers(settings, as_base64):
    # given a server answering the base64 the client asks for (OpenAI), or plain numbers (others)
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        server.embedding_base64 = as_base64
        expected = scripted_openai.embed_text("the quarterly report")
        # when
        vector = await text_embed(text="the quarterly report")
        # then the request asked for base64, as the SDK does, and the vector is the server's
        assert server.embedding_requests()[0].body["encoding_format"] == "base64"
        if as_base64:  # sent as 32-bit floats
            assert vector == [float(v) for v in array.array("f", expected)]
        else:
            assert vector == expected


async def test_text_embed_failure_is_embedding_failed(settings):
    # given
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        server.embedding_failure = 500
        # when
        with pytest.raises(ApplicationError) as caught:
            await text_embed(text="hello")
        # then
        assert caught.value.code == "embedding_failed"
        assert caught.value.status == 502


async def test_an_embedding_the_vector_columns_cannot_hold_is_refused_even_when_the_setting_agrees(
    settings, monkeypatch
):
    # given a model answering 3072 dimensions, and the setting saying 3072 too
    monkeypatch.setattr(scripted_openai, "EMBEDDING_DIMENSIONS", 3072)
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        settings.ASSISTANT_EMBEDDING_DIMENSIONS = 3072
        # when
        with pytest.raises(ApplicationError) as caught:
            await text_embed(text="hello")
    # then it is refused before any insert into a 1536-dimension column could fail
    assert caught.value.code == "embedding_failed"
    assert "3072 dimensions instead of 1536" in caught.value.message
    assert "ASSISTANT_EMBEDDING_MODEL" in caught.value.message


async def test_a_streamed_answer_carries_the_api_key_text_and_tool_calls(settings):
    # given the model streams text, then a tool call whose arguments arrive in pieces
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-streamed", server.base_url
        server.script(
            Reply(
                text="Looking it up. ",
                chunk_size=3,
                tool_calls=[ToolCall("task", {"subagent_type": "note"}, id="call_1")],
                tool_args_chunk=5,
            )
        )
        model = chat_model(ModelRole.SUPERVISOR)
        # when
        chunks = [chunk async for chunk in model.astream("hi")]
        # then the request was authenticated like any SDK call, and the answer is whole
        assert server.chat_requests()[0].headers["authorization"] == "Bearer sk-streamed"
        message = chunks[0]
        for chunk in chunks[1:]:
            message += chunk
        assert message.text == "Looking it up. "
        assert message.tool_calls == [
            {"name": "task", "args": {"subagent_type": "note"}, "id": "call_1", "type": "tool_call"}
        ]


async def test_a_failed_streamed_call_raises_the_sdks_status_error(settings):
    # given
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-streamed", server.base_url
        settings.ASSISTANT_LLM_MAX_RETRIES = 0
        server.script(failure(503))
        # when / then
        with pytest.raises(openai.APIStatusError) as caught:
            async for _chunk in chat_model(ModelRole.SUPERVISOR).astream("hi"):
                pass
        assert caught.value.status_code == 503


async def test_text_that_arrived_while_the_consumer_was_busy_comes_as_one_chunk(settings):
    # given a model that writes 60 one-character deltas at once, and a consumer slower than that
    text = "The quarterly report is due on Friday; send it to Carla then."
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        server.script(Reply(text=text, chunk_size=1))
        pieces = []
        # when
        async for chunk in chat_model(ModelRole.SUPERVISOR).astream("hi"):
            pieces.append(chunk.text)
            await asyncio.sleep(0.02)
        # then nothing is lost or reordered, and the queued deltas were merged
        assert "".join(pieces) == text
        assert len([piece for piece in pieces if piece]) < len(text) / 3


async def test_text_that_finds_the_consumer_waiting_leaves_alone_and_at_once(settings):
    # given a model that paces its deltas, and a consumer that keeps up
    text = "Send the invoice"
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        server.script(Reply(text=text, chunk_size=4, chunk_delay=0.05))
        # when
        pieces = [chunk.text async for chunk in chat_model(ModelRole.SUPERVISOR).astream("hi")]
        # then every delta came on its own (none waited for the next)
        assert [piece for piece in pieces if piece] == ["Send", " the", " inv", "oice"]


async def test_a_fast_models_first_text_crosses_two_tasks_before_the_reader_reads_on(settings):
    # given a model writing 2000 deltas at once, read through the SDK's client, and a pipeline in
    # which the text reaches its end two tasks away from the stream's consumer (as LangGraph's stream)
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        server.script(Reply(text="word " * 2000, chunk_size=5))
        read = 0

        class Counted(DecodedEventStream):
            async def __stream__(self):
                nonlocal read
                async for item in super().__stream__():
                    read += 1
                    yield item

        client = openai.AsyncOpenAI(api_key="k", base_url=server.base_url)
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        raw = await client.post("/chat/completions", body=body, cast_to=object, stream=True, stream_cls=Counted)
        hops: tuple[asyncio.Queue, asyncio.Queue] = (asyncio.Queue(), asyncio.Queue())

        async def consume() -> None:
            async for chunk in CoalescingChunkStream(raw):
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    hops[0].put_nowait(read)

        async def relay() -> None:
            hops[1].put_nowait(await hops[0].get())

        consumer, relayer = asyncio.ensure_future(consume()), asyncio.ensure_future(relay())
        # when the first text arrives at the pipeline's end
        read_when_handed_over = await hops[1].get()
        read_when_arrived = read
        # then the reader had read nothing more meanwhile (given one turn, it read on)
        assert read_when_arrived == read_when_handed_over
        await consumer
        await relayer
        assert read == 2002  # the role's delta, 2000 words, the finish
        await client.close()


def test_query_embeddings_share_one_client_per_event_loop_closed_as_the_loop_ends(settings):
    # given an endpoint, and two event loops one after the other (as two REST requests run)
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url

        async def two_turns():
            await text_embed(text="one")
            first = await loop_embeddings_model()
            await text_embed(text="two")
            second = await loop_embeddings_model()
            return first, second, first.http_async_client.is_closed

        # when
        first, second, closed_while_running = asyncio.run(two_turns())
        again, _, _ = asyncio.run(two_turns())

        # then one loop's embeddings went through one client, open while the loop ran and closed with it
        assert first is second
        assert not closed_while_running
        assert first.http_async_client.is_closed
        assert again is not first
        assert again.http_async_client.is_closed
        assert len(server.embedding_requests()) == 4
