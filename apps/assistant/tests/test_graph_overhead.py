"""What a supervisor turn costs around its model calls: the agents' middleware hooks stay on the event
loop while nothing is traced, and deepagents' tools are not rebuilt per model call."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

import langsmith
import pytest
from langchain_core.tools import BaseTool

from apps.assistant.conversation import agent_events
from apps.assistant.kinds import ChatKind
from apps.assistant.langsmith_runtime import untraced_inline
from apps.assistant.testing.scripted_openai import ScriptedOpenAI, text, tool_call


class CountingExecutor(ThreadPoolExecutor):
    """A real thread pool that counts the work handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def _turn(message: str) -> list[tuple[str, str]]:
    return [event async for event in agent_events(kind=ChatKind.HOME, message=message, history=None, system_prompt="")]


@pytest.fixture
def model(settings):
    with ScriptedOpenAI() as server:
        settings.OPENAI_API_KEY = "sk-test"
        settings.OPENAI_BASE_URL = server.base_url
        yield server


async def test_a_turns_middleware_hooks_ask_no_worker_thread_while_nothing_is_traced(model):
    # given a turn that calls the model twice (a dispatch, a sub-agent's answer, the final answer)
    model.script(
        tool_call("task", {"description": "say hi", "subagent_type": "task"}),
        text("hi"),
        text("Done."),
    )
    await _turn("warm up")  # the graph is built (once per loop) before counting
    model.script(
        tool_call("task", {"description": "say hi", "subagent_type": "task"}),
        text("hi"),
        text("Done."),
    )
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)

    # when
    events = await _turn("say hi through the task agent")

    # then the turn ran, and langchain's traced hooks set up and ended their runs on the loop
    assert ("subagent", "task") in events
    assert executor.submitted == 0


async def test_with_tracing_on_langsmith_keeps_its_own_threads():
    # given LangSmith's default way, recorded
    called: list[str] = []

    async def default_to_thread(ctx, func, *args, **kwargs):
        called.append("default")
        return ctx.run(func, *args, **kwargs)

    # when tracing is on, and then off
    with langsmith.tracing_context(enabled=True):
        traced = await untraced_inline(default_to_thread, contextvars.copy_context(), lambda: "traced")
    untraced = await untraced_inline(default_to_thread, contextvars.copy_context(), lambda: "untraced")

    # then only the traced call went LangSmith's way
    assert (traced, untraced) == ("traced", "untraced")
    assert called == ["default"]


async def test_the_supervisors_tools_are_the_same_objects_from_one_model_call_to_the_next(model):
    # given the tools of every model call, as the summarization middleware counts them
    from deepagents.middleware import summarization

    seen: list[list[int]] = []
    count = summarization._DeepAgentsSummarizationMiddleware._count_tokens

    def counting(self, messages, system_message, tools):
        seen.append([id(tool) for tool in tools or [] if isinstance(tool, BaseTool)])
        return count(self, messages, system_message, tools)

    # when two turns run
    summarization._DeepAgentsSummarizationMiddleware._count_tokens = counting
    try:
        model.script(text("one"), text("two"))
        await _turn("first")
        await _turn("second")
    finally:
        summarization._DeepAgentsSummarizationMiddleware._count_tokens = count

    # then no tool was copied for the second call (its schema would be built again)
    assert len(seen) == 2
    assert seen[0] == seen[1]
