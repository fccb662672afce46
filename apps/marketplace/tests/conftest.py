"""Marketplace fixtures: developers, reviewers, power users, zip packages, a submitted plugin
driven through the real API, and the billing fake Stripe extended for Connect."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.accounts.testing import client_for
from apps.billing.tests.conftest import deliver, webhook_endpoint  # noqa: F401  (fixtures reused as-is)
from apps.marketplace.models import PluginVersion, VersionStatus
from apps.marketplace.reviewers import GROUP_NAME as REVIEWERS_GROUP
from apps.marketplace.transitions import plugin_version_transition
from apps.storage.tests.conftest import moto_endpoint, s3  # noqa: F401  (S3 on loopback moto, reused)

from .fake_connect import FakeConnectStripe


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip_bomb(*, members: int = 1, member_bytes: int = 150 * 1024 * 1024) -> bytes:
    """A zip of zero-filled members (about 1000:1), written in chunks so the test never holds them unpacked."""
    buffer = io.BytesIO()
    chunk = bytes(1024 * 1024)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(members):
            with archive.open(f"assets/zeros-{index}.dat", "w", force_zip64=True) as member:
                for offset in range(0, member_bytes, len(chunk)):
                    member.write(chunk[: member_bytes - offset])
    return buffer.getvalue()


def make_zip(files: dict[str, bytes] | None = None, *, symlinks: dict[str, str] | None = None) -> bytes:
    """A zip package; ``symlinks`` maps a member name to its target (Unix symlink mode bits)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (files if files is not None else {"index.js": b"export default {}\n"}).items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def manifest(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "time-tracker",
        "name": "Time Tracker",
        "description": "Track the time you spend on each task and project.",
        "version": "1.0.0",
        "author": "Dev Eloper",
        "permissions": ["tasks:read", "projects:read"],
        "category": "time_tracking",
        "price_cents": 0,
    }
    return {**base, **overrides}


@pytest.fixture(autouse=True)
def _blobs_per_test(blob_dir: Path) -> Path:
    """Every test of this app writes blobs under a directory of its own (the root ``blob_dir``)."""
    return blob_dir


def stored_blobs(location: Path) -> list[Path]:
    return [p for p in location.rglob("*") if p.is_file()] if location.exists() else []


@pytest.fixture
def developer(make_user):
    return make_user("dev@example.com", email_verified=True)


@pytest.fixture
def developer_client(developer) -> APIClient:
    return client_for(developer)


@pytest.fixture
def reviewer(make_user):
    user = make_user("reviewer@example.com", is_staff=True)
    user.groups.add(Group.objects.get(name=REVIEWERS_GROUP))
    return user


@pytest.fixture
def power_user(make_user):
    return make_user("power@example.com", tier="power")


@pytest.fixture
def power_client(power_user) -> APIClient:
    return client_for(power_user)


Submit = Callable[..., PluginVersion]


def upload_package(client: APIClient, slug: str, version: str, package: bytes, *, sha: str | None = None):
    return client.generic(
        "PUT",
        f"/api/v1/plugins/developer/plugins/{slug}/versions/{version}/package",
        package,  # type: ignore[arg-type]  # the stubs say str; Django's test client sends bytes as they are
        content_type="application/zip",
        HTTP_X_PACKAGE_SHA256=sha if sha is not None else sha256_hex(package),
    )


@pytest.fixture
def submit(developer_client) -> Submit:
    """Create (or add a version to) a plugin, upload its package and submit it, through the API."""

    def run(*, package: bytes | None = None, client: APIClient | None = None, **overrides: Any) -> PluginVersion:
        client = client or developer_client
        data = manifest(**overrides)
        created = client.post("/api/v1/plugins/developer/plugins", {"manifest": data}, format="json")
        if created.status_code == 409 and created.json()["code"] == "plugin_id_taken":
            created = client.post(
                f"/api/v1/plugins/developer/plugins/{data['id']}/versions", {"manifest": data}, format="json"
            )
        assert created.status_code == 201, created.json()
        uploaded = upload_package(client, data["id"], data["version"], package or make_zip())
        assert uploaded.status_code == 200, uploaded.json()
        submitted = client.post(f"/api/v1/plugins/developer/plugins/{data['id']}/versions/{data['version']}/submit")
        assert submitted.status_code == 200, submitted.json()
        return PluginVersion.objects.select_related("plugin").get(plugin__slug=data["id"], version=data["version"])

    return run


@pytest.fixture
def approve(reviewer) -> Callable[[PluginVersion], PluginVersion]:
    def run(version: PluginVersion) -> PluginVersion:
        return plugin_version_transition(
            version=version, to_status=VersionStatus.APPROVED, actor=reviewer, notes="Looks good."
        )

    return run


@pytest.fixture
def listed(submit, approve) -> Callable[..., PluginVersion]:
    """A submitted and approved (listed) plugin version."""

    def run(**overrides: Any) -> PluginVersion:
        return approve(submit(**overrides))

    return run


@pytest.fixture
def fake_stripe(monkeypatch) -> Iterator[FakeConnectStripe]:
    server = FakeConnectStripe().start()
    # The real stripe library talks HTTP to the fake: only the outside API is replaced.
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield server
    server.stop()
    assert server.unknown == [], f"unexpected Stripe calls: {server.unknown}"
