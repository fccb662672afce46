"""The hot read endpoints answer already rendered, byte for byte what DRF would have rendered."""

from __future__ import annotations

from inspect import iscoroutinefunction

import pytest
from asgiref.sync import async_to_sync
from django.template.response import SimpleTemplateResponse
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from apps.accounts.apis import MeApi
from apps.core.rendered_responses import json_rendered, response_rendered
from apps.memory.apis import MemoryApi, MemoryKindApi
from apps.memory.models import MemoryKind
from apps.storage.apis.records import RecordListCreateApi

pytestmark = pytest.mark.django_db


def _answered(view, request, **kwargs):
    """The view's answer (an async one awaited on a loop, as Django's handler awaits it)."""
    handler = view.as_view()
    return async_to_sync(handler)(request, **kwargs) if iscoroutinefunction(handler) else handler(request, **kwargs)


@pytest.mark.parametrize(
    ("view", "path", "kwargs"),
    [
        (MeApi, "/api/v1/auth/me", {}),
        (RecordListCreateApi, "/api/v1/storage/records", {}),
        (MemoryApi, "/api/v1/memory", {}),
        (MemoryKindApi, "/api/v1/memory/core", {"kind": MemoryKind.CORE}),
    ],
)
def test_a_hot_read_leaves_the_view_rendered(make_user, view, path, kwargs):
    # given an authenticated GET of a hot read (on a tier that stores records)
    request = APIRequestFactory().get(path)
    force_authenticate(request, user=make_user("alice@example.com", tier="power"))

    # when the view answers
    response = _answered(view, request, **kwargs)

    # then Django's handler has nothing left to render (it would hop to the sync thread for it)
    assert response.status_code == 200
    assert not isinstance(response, SimpleTemplateResponse)
    assert response["Content-Type"] == "application/json"


def test_an_error_leaves_the_view_rendered_with_its_code(make_user):
    request = APIRequestFactory().get("/api/v1/storage/records", {"page": "0"})
    force_authenticate(request, user=make_user("alice@example.com", tier="power"))

    response = _answered(RecordListCreateApi, request)

    assert not isinstance(response, SimpleTemplateResponse)
    assert response.status_code == 400
    assert b'"code":"validation_error"' in response.content


def test_the_rendered_answer_keeps_status_headers_cookies_bytes_and_data():
    # given a DRF answer with a header and a cookie, as a view finalizes it
    from rest_framework.renderers import JSONRenderer

    original = Response({"ok": True, "name": "é"}, status=201, headers={"X-Total-Count": "3"})
    original.accepted_renderer = JSONRenderer()
    original.accepted_media_type = "application/json"
    original.renderer_context = {}
    original.set_cookie("seen", "1")

    # when it is rendered in the view
    rendered = response_rendered(response=original)

    # then nothing the client receives changed
    assert rendered.status_code == 201
    assert rendered.content == '{"ok":true,"name":"é"}'.encode()
    assert rendered["X-Total-Count"] == "3"
    assert rendered["Content-Type"] == "application/json"
    assert rendered.cookies["seen"].value == "1"
    assert rendered.data == {"ok": True, "name": "é"}


def _drf_rendered(data, headers):
    from rest_framework.renderers import JSONRenderer

    response = Response(data, headers=headers)
    response.accepted_renderer = JSONRenderer()
    response.accepted_media_type = "application/json"
    response.renderer_context = {}
    return response_rendered(response=response)


def test_json_rendered_is_byte_for_byte_what_drf_renders():
    # given text with every ASCII control character, quotes, backslashes, the JavaScript line
    # terminators DRF escapes, non-ASCII letters and a character outside the BMP, big and small ints,
    # booleans, None, nested lists and dicts
    text = "".join(chr(code) for code in range(0x80)) + ' é ✓ "q" \\ \u2028 \u2029 \U0001f600 \ufeff \u0085 \x7f'
    data = {
        "count": 2**63 - 1,
        "page": 0,
        "results": [{"text": text, "none": None, "yes": True, "no": False, "list": [-1, "", {}]}, {}],
    }

    headers = {"X-Total-Count": "2", "Link": '<http://testserver/x?page=2>; rel="next"'}

    # when it is rendered both ways, with headers
    fast, drf = json_rendered(data=data, headers=headers), _drf_rendered(data, headers)

    # then the client receives the same status, headers (in the same order) and bytes, and callers
    # read the same data
    assert fast.content == drf.content
    assert b"\\u2028" in fast.content
    assert b"\\u2029" in fast.content
    assert (fast.status_code, list(fast.headers.items())) == (drf.status_code, list(drf.headers.items()))
    assert fast.data == data
