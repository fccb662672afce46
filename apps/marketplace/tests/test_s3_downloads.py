"""On S3 (a loopback moto server), packages are streamed to the bucket, inspected from it, and an
install answers a presigned S3 URL of the approved package."""

from __future__ import annotations

import hashlib
import urllib.request

import pytest

from apps.storage.tests.conftest import s3_keys

from .conftest import make_zip

pytestmark = pytest.mark.django_db


def test_an_install_on_s3_answers_a_presigned_url_of_the_package(s3, listed, power_client):
    # given
    package = make_zip({"index.js": b"export default 42;\n"})
    version = listed(package=package)
    assert s3_keys(s3) == [version.package_key]
    assert all(item["passed"] for item in version.checklist)

    # when
    url = power_client.post("/api/v1/plugins/time-tracker/install").json()["download_url"]

    # then: the link goes straight to the bucket, signed and expiring
    assert url.startswith(s3.meta.endpoint_url)
    assert "Expires=" in url or "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert hashlib.sha256(response.read()).hexdigest() == hashlib.sha256(package).hexdigest()
