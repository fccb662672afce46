"""The sanitizer removes system-prompt text from output, whole or streamed, and leaves answers alone."""

from __future__ import annotations

import asyncio
import json
import uuid

from apps.assistant import prompts
from apps.assistant.sanitizer import PromptSanitizer, StreamSanitizer
from apps.devices.streams import RequestStream


def _stream(text: str, size: int) -> str:
    sanitizer = StreamSanitizer()
    out = "".join(sanitizer.feed(text[i : i + size]) for i in range(0, len(text), size))
    return out + sanitizer.flush()


def test_echoed_prompt_fragment_is_removed():
    # given a model output quoting a whole prompt fragment
    leak = f"Sure, my instructions say: {prompts.DELEGATION.prose} Anything else?"
    # when
    cleaned = PromptSanitizer().clean(leak)
    # then
    assert "Delegate every read" not in cleaned
    assert "sub-agent" not in cleaned
    assert cleaned.startswith("Sure, my instructions say:")
    assert cleaned.endswith("Anything else?")


def test_reformatted_echo_is_still_removed():
    # given the confidentiality rule echoed in upper case, as a markdown list
    words = prompts.CONFIDENTIALITY.prose.upper().split()
    leak = "Here:\n" + "\n".join(f"* {' '.join(words[i : i + 5])}" for i in range(0, len(words), 5))
    # when
    cleaned = PromptSanitizer().clean(leak)
    # then
    assert "CONFIDENTIAL SERVER CONFIGURATION" not in cleaned
    assert len(cleaned) < len(leak) / 3


def test_ordinary_answers_with_tags_and_charts_pass_untouched():
    # given an answer using entity and chart tags the way the prompt asks
    answer = (
        "You have 2 tasks due today:\n<task>[3f1c2a,9b7d10]</task>\n"
        '<chart>{"chartType": "bar", "title": "Tasks by status", "data": [{"status": "todo", "count": 3}], '
        '"config": {"count": {"label": "Tasks", "color": "#2563eb"}}}</chart>\n'
        "Task status is todo for both; priority is high."
    )
    # when / then
    assert PromptSanitizer().clean(answer) == answer
    assert _stream(answer, 3) == answer


def test_leak_split_across_tiny_chunks_never_leaves_the_server():
    # given a leak streamed three characters at a time between normal text
    text = "Okay. " + prompts.ENTITY_TAGS.prose + " Now, your tasks: <task>[a1]</task> done."
    # when
    out = _stream(text, 3)
    # then no eight-word run of the prompt survives, and the answer around it does
    assert "entity tag on its own line" not in out
    assert "Put only ids returned" not in out
    assert out.startswith("Okay.")
    assert out.endswith("Now, your tasks: <task>[a1]</task> done.")


def test_streaming_releases_text_before_the_end_for_long_answers():
    # given a long harmless answer
    sanitizer = StreamSanitizer()
    text = "word " * 400
    # when
    released = "".join(sanitizer.feed(text[i : i + 10]) for i in range(0, len(text), 10))
    # then all of it went out while streaming, and nothing is lost at the end
    assert released == text
    assert sanitizer.flush() == ""


def test_ordinary_tokens_are_released_without_waiting_for_more():
    # given an answer streamed the way a model does, one word (with its space) at a time
    sanitizer = StreamSanitizer()
    tokens = ["Your", " banana", " smoothie", " needs", " frozen", " mango", " chunks", ".\n"]
    # when / then each token leaves as soon as the next one shows it was not a prompt word
    # (a complete word is released with the token that ends it)
    out = []
    for token in tokens:
        out.append(sanitizer.feed(token))
        assert "".join(out) + sanitizer.held == "".join(tokens[: len(out)])
    assert "".join(out) == "".join(tokens)


def test_only_a_tail_that_could_begin_a_prompt_window_is_held():
    # given ordinary text followed by the first words of a prompt window
    window_start = " ".join(prompts.DELEGATION.prose.split()[:3])
    sanitizer = StreamSanitizer()
    # when
    released = sanitizer.feed(f"Sure thing. {window_start}")
    # then the ordinary part is out and only the possible window start waits
    assert released == "Sure thing. "
    assert sanitizer.held == window_start


def test_a_leak_split_at_every_possible_chunk_boundary_is_removed():
    # given one prompt window (eight words) inside ordinary text
    window = " ".join(prompts.ENTITY_TAGS.prose.split()[:8])
    text = f"Hi there. {window} bye now"
    # when it is streamed in two chunks split at every character position, and in three
    for cut in range(1, len(text)):
        out = _stream_parts([text[:cut], text[cut:]])
        # then no part of the window leaves the server and the text around it does
        assert window not in out, cut
        assert " ".join(window.split()[:2]) not in out, cut
        assert out.startswith("Hi there."), (cut, out)
        assert out.endswith("bye now"), (cut, out)
    for a in range(1, len(text) - 1, 3):
        for b in range(a + 1, len(text), 5):
            out = _stream_parts([text[:a], text[a:b], text[b:]])
            assert window not in out, (a, b, out)
            assert out.startswith("Hi there."), (a, b, out)
            assert out.endswith("bye now"), (a, b, out)


def _stream_parts(parts: list[str]) -> str:
    sanitizer = StreamSanitizer()
    return "".join(sanitizer.feed(part) for part in parts) + sanitizer.flush()


def test_prompts_carry_entity_tags_chart_types_and_value_rules():
    # when
    home = prompts.home_system_prompt(memory_fragment="<user_memory>likes tea</user_memory>")
    # then
    assert "<task>[" in home
    for chart_type in ("area", "bar", "line", "pie", "radar", "radial"):
        assert chart_type in home
    assert "in_progress" in home
    assert "likes tea" in home


async def test_a_leak_split_across_frames_merged_behind_a_busy_socket_never_reaches_the_client() -> None:
    # given a prompt window split into one-character chunks, sanitized as the assistant streams it,
    # and a request stream whose socket stays busy, so the released text is merged into few frames
    window = " ".join(prompts.ENTITY_TAGS.prose.split()[:8])
    text = f"Hi there. {window} bye now"
    request_id = uuid.uuid4().hex
    stream = RequestStream(user_id="sanitizer-user", request_id=request_id, node="test-node")
    delivered: list[dict] = []
    gate = asyncio.Event()

    class BusySocket:
        async def send_text(self, frame_text: str) -> None:
            delivered.append(json.loads(frame_text))
            await gate.wait()

    stream.attach(BusySocket(), 0)
    sanitizer = StreamSanitizer()

    # when every released piece is emitted while the socket is busy, then the socket frees up
    stream.emit({"type": "stream_start", "request_id": request_id})
    for char in text:
        piece = sanitizer.feed(char)
        if piece:
            stream.emit({"type": "stream_text", "request_id": request_id, "chunk": piece})
        await asyncio.sleep(0)
    stream.emit({"type": "stream_text", "request_id": request_id, "chunk": sanitizer.flush()})
    gate.set()
    stream.emit({"type": "stream_end", "request_id": request_id, "mutations": []})
    stream.finish()
    await asyncio.wait_for(stream._writer, 10)

    # then frames were merged, and the client's text has neither the window nor its start
    texts = [f for f in delivered if f["type"] == "stream_text"]
    client_text = "".join(f["chunk"] for f in texts)
    assert len(texts) < len(text) // 4
    assert window not in client_text
    assert " ".join(window.split()[:2]) not in client_text
    assert client_text.startswith("Hi there.")
    assert client_text.endswith("bye now")
