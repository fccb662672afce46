"""A request's view is looked for through the URL patterns once per path (apps.core.url_resolution)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.http import JsonResponse
from django.urls import Resolver404, URLResolver, get_resolver, path

from apps.core.testing.asgi_request import asgi_get_response
from apps.core.url_resolution import resolved

ME = "/api/v1/auth/me"


def _only_here(request):
    return JsonResponse({"urlconf": "test_url_resolution"})


urlpatterns = [path("only-here", _only_here)]  # ROOT_URLCONF for one test below


@pytest.fixture
def resolves(monkeypatch) -> list[str]:
    """The paths Django's resolver was asked for, from now on."""
    asked: list[str] = []
    resolve = URLResolver.resolve

    def counted(self, path):
        if self is get_resolver():  # the root's call, not an include's
            asked.append(path)
        return resolve(self, path)

    monkeypatch.setattr(URLResolver, "resolve", counted)
    return asked


@pytest.fixture
def fresh_cache(settings):
    settings.URL_RESOLVE_CACHE_SIZE = 64  # a setting change empties the cache


@pytest.mark.django_db(transaction=True)
async def test_a_path_is_resolved_once_and_its_later_requests_answer_the_same(
    loop_asgi_app, auth_client, tokens, user, resolves, fresh_cache
):
    headers = {"Authorization": f"Bearer {tokens.access_token}"}

    first = await asgi_get_response(loop_asgi_app, ME, headers=headers)
    second = await asgi_get_response(loop_asgi_app, ME, headers=headers)

    assert first[0] == second[0] == 200
    assert json.loads(first[2]) == json.loads(second[2])
    assert json.loads(second[2])["id"] == str(user.id)
    assert resolves == [ME]


def test_each_path_keeps_its_own_arguments(fresh_cache):
    one, other = uuid.uuid4(), uuid.uuid4()

    matches = [resolved(get_resolver(), f"/api/v1/memory/associative/{item}") for item in (one, other, one)]

    assert [match.kwargs["item_id"] for match in matches] == [one, other, one]
    assert {match.url_name for match in matches} == {"memory-item"}
    assert matches[0] is matches[2]


def test_a_path_that_matches_nothing_is_asked_again_every_time(resolves, fresh_cache):
    for _ in range(2):
        with pytest.raises(Resolver404):
            resolved(get_resolver(), "/no-such-thing")

    assert resolves == ["/no-such-thing"] * 2


def test_a_size_of_zero_resolves_every_request(settings, resolves):
    settings.URL_RESOLVE_CACHE_SIZE = 0

    for _ in range(2):
        resolved(get_resolver(), ME)

    assert resolves == [ME, ME]


def test_another_urlconf_is_resolved_afresh(settings, fresh_cache):
    with pytest.raises(Resolver404):
        resolved(get_resolver(), "/only-here")

    settings.ROOT_URLCONF = __name__

    assert resolved(get_resolver(), "/only-here").func is _only_here
