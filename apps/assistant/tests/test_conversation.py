"""The supervisor's streamed dispatches are named as soon as their sub-agent is known."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk

from apps.assistant.conversation import DispatchWatch


def _piece(args: str, *, name: str | None = None, call_id: str | None = None, index: int = 0) -> AIMessageChunk:
    return AIMessageChunk(content="", tool_call_chunks=[{"name": name, "args": args, "id": call_id, "index": index}])


def test_a_dispatch_is_named_once_its_subagent_type_has_streamed_and_only_once():
    # given a task call whose arguments stream in pieces
    watch = DispatchWatch()

    # when the pieces arrive
    named = [
        watch.feed(_piece('{"description": "x", "suba', name="task", call_id="c1")),
        watch.feed(_piece('gent_type": "no')),
        watch.feed(_piece('te"')),
        watch.feed(_piece("}")),
    ]

    # then the name comes with the closing quote, not before, and not again
    assert named == [[], [], ["note"], []]
    assert watch.reported == {"c1"}


def test_other_tools_and_parallel_dispatches_are_told_apart_by_index():
    # given a device tool call and two dispatches streamed side by side
    watch = DispatchWatch()

    # when
    first = watch.feed(_piece('{"subagent_type": "task"}', name="get_note", call_id="c0", index=0))
    second = watch.feed(_piece('{"subagent_type": "pro', name="task", call_id="c1", index=1))
    third = watch.feed(_piece('{"subagent_type": "timeline"}', name="task", call_id="c2", index=2))
    fourth = watch.feed(_piece('ject"}', index=1))

    # then only the dispatches are named, each when complete
    assert (first, second, third, fourth) == ([], [], ["timeline"], ["project"])


def test_an_escaped_name_is_decoded():
    watch = DispatchWatch()

    assert watch.feed(_piece('{"subagent_type": "n\\u006fte"}', name="task", call_id="c1")) == ["note"]
