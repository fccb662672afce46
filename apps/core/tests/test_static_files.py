"""Static files come from the app itself: streamed asynchronously, and in production from
collectstatic's compressed, content-hashed copies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory

from apps.core.static_files import AsyncStaticFilesMiddleware


def _not_found(request):
    return HttpResponse(status=404)


def _read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


async def _body(response) -> bytes:
    return b"".join([chunk async for chunk in response])


async def test_a_static_file_is_streamed_asynchronously_with_its_content_type():
    # given the middleware serving from the apps' static folders (test settings: finders)
    middleware = AsyncStaticFilesMiddleware(_not_found)

    # when admin's stylesheet is requested
    response = middleware(RequestFactory().get("/static/admin/css/base.css"))

    # then it is answered with an async body (no whole-file read under ASGI) holding the file
    assert response.status_code == 200
    assert response.is_async
    assert response["Content-Type"].startswith("text/css")
    assert await _body(response) == _read(finders.find("admin/css/base.css"))


async def test_other_paths_go_on_to_the_app():
    middleware = AsyncStaticFilesMiddleware(_not_found)

    response = middleware(RequestFactory().get("/static/no/such/file.css"))

    assert response.status_code == 404


async def test_a_conditional_request_gets_an_empty_304():
    # given the file's ETag from a first answer
    middleware = AsyncStaticFilesMiddleware(_not_found)
    etag = middleware(RequestFactory().get("/static/admin/css/base.css"))["ETag"]

    # when the browser revalidates
    response = middleware(RequestFactory().get("/static/admin/css/base.css", headers={"If-None-Match": etag}))

    # then nothing is sent again
    assert response.status_code == 304
    assert await _body(response) == b""


@pytest.fixture
def collected_static(settings, tmp_path):
    """The production static setup: collectstatic into STATIC_ROOT with compressed, hashed names."""
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = False
    settings.WHITENOISE_AUTOREFRESH = False
    call_command("collectstatic", "--noinput", verbosity=0)
    return tmp_path


async def test_production_serves_collected_files_under_hashed_names_compressed_and_cached_forever(
    collected_static,
):
    # given the hashed name collectstatic gave admin's stylesheet
    hashed = next(path.name for path in (collected_static / "admin" / "css").glob("base.*.css"))
    assert re.fullmatch(r"base\.[0-9a-f]{12}\.css", hashed)
    middleware = AsyncStaticFilesMiddleware(_not_found)

    # when a browser that accepts gzip asks for it
    response = middleware(RequestFactory().get(f"/static/admin/css/{hashed}", headers={"Accept-Encoding": "gzip"}))

    # then it gets the pre-compressed copy, cacheable for good (the name changes with the content)
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "immutable" in response["Cache-Control"]
    assert await _body(response) == _read(collected_static / "admin" / "css" / f"{hashed}.gz")
