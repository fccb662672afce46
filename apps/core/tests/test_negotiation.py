"""The remembered content negotiation answers what DRF's own answers, request after request."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.core import negotiation
from apps.core.negotiation import RememberingContentNegotiation

ACCEPTS = [
    None,
    "application/json",
    "*/*",
    "application/*",
    "application/json; indent=4",
    "text/html, application/json;q=0.9",
    "text/html;q=0.1, application/json;q=0.9",
]


def _request(accept: str | None, query: str = "") -> Request:
    factory = APIRequestFactory()
    path = f"/api/v1/things{query}"
    return Request(factory.get(path) if accept is None else factory.get(path, HTTP_ACCEPT=accept))


def _answer(negotiator, accept, renderers, query=""):
    renderer, media_type = negotiator.select_renderer(_request(accept, query), renderers)
    return renderers.index(renderer), media_type


@pytest.mark.parametrize("renderer_classes", [[JSONRenderer], [JSONRenderer, BrowsableAPIRenderer]])
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api"])
def test_every_answer_is_drfs_the_first_time_and_every_time_after(renderer_classes, query):
    # given each Accept header asked several times, with each format override
    for accept in ACCEPTS:
        renderers = [cls() for cls in renderer_classes]
        try:
            expected = _answer(DefaultContentNegotiation(), accept, renderers, query)
        except Exception as exc:  # what DRF refuses must be refused the same way
            expected = type(exc)
        for _ in range(3):
            # when the remembering negotiation answers, on a fresh renderer list as each request has
            fresh = [cls() for cls in renderer_classes]
            try:
                answer = _answer(RememberingContentNegotiation(), accept, fresh, query)
            except Exception as exc:
                answer = type(exc)
            # then it is DRF's answer, and the renderer is this request's own instance
            assert answer == expected, (accept, query)


def test_a_refused_accept_is_refused_again_after_an_accepted_one():
    renderers = [JSONRenderer()]
    assert _answer(RememberingContentNegotiation(), "application/json", renderers) == (0, "application/json")

    for _ in range(2):
        with pytest.raises(NotAcceptable):
            RememberingContentNegotiation().select_renderer(_request("text/html"), renderers)


def test_the_remembered_answers_are_bounded(monkeypatch):
    monkeypatch.setattr(negotiation, "_answers", {})
    for index in range(negotiation.ANSWERS_MAX + 50):
        accept = f"application/json; client={index}"
        assert _answer(RememberingContentNegotiation(), accept, [JSONRenderer()]) == (0, accept)

    assert len(negotiation._answers) == negotiation.ANSWERS_MAX
