"""A streamed chat completion's events are split a read at a time exactly as the SDK's decoder
splits them line by line, and the stream class keeps the SDK stream's errors and endings."""

from __future__ import annotations

import itertools
import json
import random

import openai
import pytest
from openai._streaming import SSEDecoder

from apps.assistant.event_stream import DecodedEventStream, ServerSentEvents, event_json
from apps.assistant.llm import ModelRole, chat_model
from apps.assistant.testing.scripted_openai import Reply, ScriptedOpenAI

# Every line ending, comments, named events, multi-line data, ids, retries, blank-line runs, no-data events.
STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"n": 1}\n\n'
    b'data: {"n": 2}\r\n\r\n'
    b'data: {"n": 3}\r\rdata:{"n": 4}\n\n\n\n'
    b"event: error\r\n"
    b'data: {"a":\n'
    b'data: "b"}\n'
    b"id: 7\n"
    b"retry: 100\n\n"
    b"id: 8\n\n"
    b'data: {"text": "caf\xc3\xa9 \xe2\x82\xac"}\n\n'
    b"data: [DONE]\n\n"
    b'data: {"never": "ended"}'
)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def sdk_events(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    """What the SDK's own decoder dispatches (events with data only: the SDK fails on the others)."""
    decoded = list(SSEDecoder().iter_bytes(iter(chunks)))
    return [(sse.event, sse.data) for sse in decoded if sse.data]


def our_events(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    events = ServerSentEvents()
    found = [event for chunk in chunks for event in events.feed(chunk)] + events.finish()
    return [(event.event, event.data.decode()) for event in found]


def test_events_match_the_sdks_decoder_however_the_reads_cut_the_stream():
    # given the stream cut at every single position, and at many random sets of positions
    cuttings = [[i] for i in range(len(STREAM))] + [
        random.Random(seed).sample(range(len(STREAM)), k=random.Random(seed).randint(2, 40)) for seed in range(300)
    ]
    expected = sdk_events([STREAM])
    assert [data for _, data in expected][:4] == ['{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}']
    assert ("error", '{"a":\n"b"}') in expected
    for cuts in cuttings:
        # when
        found = our_events(split_at(STREAM, cuts))
        # then
        assert found == expected, cuts


def test_a_byte_at_a_time_matches_too():
    assert our_events([STREAM[i : i + 1] for i in range(len(STREAM))]) == sdk_events([STREAM])


def test_a_long_event_in_many_reads_is_joined_once_it_ends():
    # given one 200 kB event arriving in 1 kB reads
    payload = json.dumps({"text": "x" * 200_000}).encode()
    stream = b"data: " + payload + b"\n\n"
    events = ServerSentEvents()
    # when
    found = [event for i in range(0, len(stream), 1000) for event in events.feed(stream[i : i + 1000])]
    # then
    assert [event.data for event in found] == [payload]


def test_event_data_is_json_and_anything_else_a_value_error():
    assert event_json(b'{"n": 1, "s": "caf\xc3\xa9"}') == {"n": 1, "s": "café"}
    assert event_json(b'{"n": 123456789012345678901234567890}') == {"n": 1.2345678901234568e29}
    with pytest.raises(ValueError, match="line 1 column 1"):
        event_json(b"not json")


async def test_a_stream_yields_each_events_json_and_stops_at_done(settings):
    # given
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        server.script(Reply(text="abcdef", chunk_size=2))
        client = openai.AsyncOpenAI(api_key="k", base_url=server.base_url)
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        # when
        stream = await client.post(
            "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=DecodedEventStream
        )
        items = [item async for item in stream]
        # then: the role chunk, three text deltas, the finish; nothing after [DONE]
        deltas = [item["choices"][0]["delta"].get("content") for item in items]
        assert deltas == ["", "ab", "cd", "ef", None]
        assert items[-1]["choices"][0]["finish_reason"] == "stop"
        assert stream.response.is_closed
        await client.close()


async def test_an_error_event_raises_the_sdks_api_error(settings):
    # given a server that answers a stream with an error object
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url

        class ErrorStream(DecodedEventStream):
            async def _reads(self):
                yield b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'

        server.script(Reply(text="ignored"))
        client = openai.AsyncOpenAI(api_key="k", base_url=server.base_url)
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        stream = await client.post("/chat/completions", body=body, cast_to=object, stream=True, stream_cls=ErrorStream)
        # when / then
        with pytest.raises(openai.APIError, match="overloaded"):
            [item async for item in stream]
        assert stream.response.is_closed
        await client.close()


async def test_a_stream_cut_mid_answer_raises_a_connection_error(settings):
    # given the model drops the connection after two deltas
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "k", server.base_url
        settings.ASSISTANT_LLM_MAX_RETRIES = 0
        server.script(Reply(text="abcdefgh", chunk_size=2, break_stream_after=2))
        pieces: list[str] = []

        async def read() -> None:
            async for chunk in chat_model(ModelRole.SUPERVISOR).astream("hi"):
                pieces.append(chunk.text)

        # when / then
        with pytest.raises(openai.APIConnectionError):
            await read()
        assert "".join(pieces) == "abcd"
