"""apps.core.per_settings: one object per alias, made again only when the alias's settings are replaced."""

from __future__ import annotations

from apps.core.per_settings import PerSettings


def test_an_object_is_made_once_per_alias_and_again_when_its_settings_are_replaced():
    # given settings per alias, and every object made counted
    configured = {"default": {"LOCATION": "a"}, "other": {"LOCATION": "b"}}
    made: list[str] = []

    def make(alias: str) -> tuple[str, str]:
        made.append(alias)
        return (alias, configured[alias]["LOCATION"])

    per_settings = PerSettings(settings_of=lambda alias: configured[alias], make=make)

    # when each alias is asked for twice
    first = [per_settings(), per_settings(), per_settings("other"), per_settings("other")]

    # then each was made once, and the same object answered both times
    assert made == ["default", "other"]
    assert first[0] is first[1]
    assert first[2] is first[3]
    assert first[0] == ("default", "a")

    # and when an alias's settings are replaced (override_settings), its object is made again
    configured["default"] = {"LOCATION": "c"}
    assert per_settings() == ("default", "c")
    assert per_settings("other") is first[2]
    assert made == ["default", "other", "default"]
