"""The answer on its way to the sink: a Floating turn's text waits for its domain; a Home turn's
does not."""

from __future__ import annotations

from apps.assistant.services import AnnouncedAnswer


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def domain(self, domain: str) -> None:
        self.events.append(("domain", domain))

    async def start(self) -> None:
        self.events.append(("start", ""))

    async def text(self, chunk: str) -> None:
        self.events.append(("text", chunk))


async def test_floating_text_is_held_until_the_first_domain_is_announced():
    # given a Floating answer
    sink = RecordingSink()
    answer = AnnouncedAnswer(sink=sink, hold_until_announced=True)
    await answer.open()

    # when text comes before the domain, and a second domain after it
    await answer.write("Hel")
    await answer.write("")
    await answer.write("lo")
    await answer.announce("projects")
    await answer.announce("tasks")
    await answer.write("!")

    # then the domain comes first, only the first one counts, and no text is lost or empty
    assert sink.events == [("domain", "projects"), ("start", ""), ("text", "Hel"), ("text", "lo"), ("text", "!")]
    assert answer.text == "Hello!"


async def test_home_text_streams_at_once_and_announces_nothing():
    sink = RecordingSink()
    answer = AnnouncedAnswer(sink=sink, hold_until_announced=False)
    await answer.open()
    await answer.write("Hi")
    await answer.announce("tasks")

    assert sink.events == [("start", ""), ("text", "Hi")]
    assert answer.text == "Hi"
