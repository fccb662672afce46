"""The scripted OpenAI-compatible server speaks the protocol the real langchain-openai clients expect."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import SecretStr

from apps.assistant.testing.scripted_openai import EMBEDDING_DIMENSIONS, ScriptedOpenAI, failure, text, tool_call


@pytest.fixture
def server():
    with ScriptedOpenAI() as s:
        yield s


def _chat(server: ScriptedOpenAI, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model="scripted", api_key=SecretStr("k"), base_url=server.base_url, max_retries=0, **kwargs)


def test_plain_completion_is_served_and_recorded(server):
    # given
    server.script(text("hello there"))
    # when
    answer = _chat(server).invoke([HumanMessage("hi")])
    # then
    assert answer.content == "hello there"
    assert server.chat_requests()[0].last_user_text == "hi"


async def test_streamed_completion_arrives_in_chunks(server):
    # given
    server.script(text("one two three", chunk_size=3))
    # when
    chunks = [c.content async for c in _chat(server).astream([HumanMessage("count")])]
    # then
    assert "".join(chunks) == "one two three"
    assert len([c for c in chunks if c]) == 5


async def test_streamed_tool_call_is_parsed(server):
    # given
    server.script(tool_call("list_tasks", {"status": "todo"}))
    model = _chat(server)
    # when
    final = None
    async for c in model.astream([HumanMessage("tasks")]):
        final = c if final is None else final + c
    # then
    assert final.tool_calls[0]["name"] == "list_tasks"
    assert final.tool_calls[0]["args"] == {"status": "todo"}


def test_callable_reply_sees_the_request(server):
    # given
    server.script(lambda body: text(f"echo {body['messages'][-1]['content']}"))
    # when
    answer = _chat(server).invoke([HumanMessage("ping")])
    # then
    assert answer.content == "echo ping"


def test_scripted_failure_is_an_http_error(server):
    # given
    server.script(failure(503))
    # when / then
    with pytest.raises(Exception, match=r"503|scripted failure"):
        _chat(server).invoke([HumanMessage("x")])


def test_embeddings_are_deterministic_and_similar_for_shared_words(server):
    # given
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small", api_key="k", base_url=server.base_url, check_embedding_ctx_length=False
    )
    # when
    a, b, c = embeddings.embed_documents(["coffee every morning", "morning coffee", "quarterly tax report"])
    # then
    assert len(a) == EMBEDDING_DIMENSIONS
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert dot(a, b) > dot(a, c)
    assert embeddings.embed_query("morning coffee") == b
