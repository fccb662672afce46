"""Developers submit plugins through the API: manifest validation, streamed and verified packages,
the automatic checklist, draft → pending_review, and their view of statuses and review notes."""

from __future__ import annotations

import os

import pytest

from apps.core.models import AuditEvent
from apps.marketplace.models import Plugin, PluginVersion, VersionStatus
from apps.storage.tests.conftest import each_wrong_checksum

from .conftest import client_for, make_zip, manifest, sha256_hex, stored_blobs, upload_package

pytestmark = pytest.mark.django_db

PLUGINS = "/api/v1/plugins/developer/plugins"


def _checklist(body: dict) -> dict[str, bool]:
    return {item["key"]: item["passed"] for item in body["checklist"]}


def test_a_plugin_goes_from_draft_to_pending_review_with_its_checklist(developer_client, developer):
    # given
    created = developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")
    assert created.status_code == 201
    assert created.json()["status"] == "draft"
    package = make_zip()

    # when
    uploaded = upload_package(developer_client, "time-tracker", "1.0.0", package)
    submitted = developer_client.post(f"{PLUGINS}/time-tracker/versions/1.0.0/submit")

    # then
    assert uploaded.status_code == 200
    body = uploaded.json()
    assert body["package_sha256"] == sha256_hex(package)
    assert body["package_size"] == len(package)
    assert all(_checklist(body).values()), body["checklist"]
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "pending_review"
    version = PluginVersion.objects.get(plugin__slug="time-tracker")
    assert version.status == VersionStatus.PENDING_REVIEW
    assert Plugin.objects.get(slug="time-tracker").status == "unlisted"
    audit = AuditEvent.objects.get(action="plugin.submitted")
    assert audit.actor == developer
    assert audit.target_id == str(version.pk)


def test_an_invalid_manifest_is_a_400_naming_the_fields_and_creates_nothing(developer_client):
    response = developer_client.post(
        PLUGINS,
        {"manifest": manifest(permissions=["tasks:read", "shell:exec"], version="latest", price_cents=20)},
        format="json",
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_manifest"
    assert set(body["fields"]) >= {"manifest.permissions.1", "manifest.version"}
    assert not Plugin.objects.exists()


def test_a_manifest_with_a_data_uri_is_refused(developer_client):
    response = developer_client.post(
        PLUGINS, {"manifest": manifest(icon="data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==")}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_manifest"


def test_a_taken_plugin_id_is_a_409(developer_client, make_user):
    developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")
    from apps.accounts.testing import client_for

    response = client_for(make_user("other-dev@example.com", email_verified=True)).post(
        PLUGINS, {"manifest": manifest()}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "plugin_id_taken"


def test_a_new_version_must_bump_the_version_and_keep_the_id(developer_client):
    developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")

    same = developer_client.post(f"{PLUGINS}/time-tracker/versions", {"manifest": manifest()}, format="json")
    other_id = developer_client.post(
        f"{PLUGINS}/time-tracker/versions", {"manifest": manifest(id="other", version="1.1.0")}, format="json"
    )

    assert same.status_code == 409
    assert same.json()["code"] == "version_exists"
    assert other_id.status_code == 400
    assert other_id.json()["code"] == "manifest_id_mismatch"


@each_wrong_checksum
def test_a_package_not_matching_its_declared_sha256_is_a_400_and_nothing_is_stored(
    developer_client, blob_dir, wrong_checksum
):
    developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")
    package = make_zip()

    response = upload_package(developer_client, "time-tracker", "1.0.0", package, sha=wrong_checksum(package))

    assert response.status_code == 400
    assert response.json()["code"] == "checksum_mismatch"
    assert stored_blobs(blob_dir) == []
    assert PluginVersion.objects.get().package_key == ""


def test_an_oversized_package_is_a_413_and_nothing_is_stored(developer_client, blob_dir, settings):
    settings.MARKETPLACE_PACKAGE_MAX_BYTES = 1024
    developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")
    package = make_zip({"big.bin": os.urandom(4096)})
    assert len(package) > 1024

    response = upload_package(developer_client, "time-tracker", "1.0.0", package)

    assert response.status_code == 413
    assert response.json()["code"] == "package_too_large"
    assert stored_blobs(blob_dir) == []


def test_a_missing_sha256_header_is_a_400(developer_client):
    developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")

    response = upload_package(developer_client, "time-tracker", "1.0.0", make_zip(), sha="")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_checksum"


def test_dangerous_package_contents_are_flagged_on_the_checklist(developer_client):
    developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")
    package = make_zip(
        {"index.js": b"x", "addon.node": b"\x7fELF", "../escape.js": b"x", "inner.zip": make_zip()},
        symlinks={"etc": "/etc"},
    )

    body = upload_package(developer_client, "time-tracker", "1.0.0", package).json()

    checks = _checklist(body)
    assert checks["no_executables"] is False
    assert checks["no_symlinks"] is False
    assert checks["no_path_escape"] is False
    assert checks["no_nested_archives"] is False
    assert checks["manifest_valid"] is True
    assert checks["package_hash_matches"] is True


def test_submitting_without_a_package_is_refused(developer_client):
    developer_client.post(PLUGINS, {"manifest": manifest()}, format="json")

    response = developer_client.post(f"{PLUGINS}/time-tracker/versions/1.0.0/submit")

    assert response.status_code == 409
    assert response.json()["code"] == "package_missing"


def test_a_submitted_version_cannot_be_submitted_again_or_get_a_new_package(developer_client, submit):
    submit()

    again = developer_client.post(f"{PLUGINS}/time-tracker/versions/1.0.0/submit")
    upload = upload_package(developer_client, "time-tracker", "1.0.0", make_zip())

    assert again.status_code == 409
    assert again.json()["code"] == "invalid_transition"
    assert upload.status_code == 409


def test_developers_see_their_plugins_with_statuses_and_review_notes(developer_client, submit, reviewer):
    from apps.marketplace.transitions import plugin_version_transition

    version = submit()
    plugin_version_transition(version=version, to_status=VersionStatus.REJECTED, actor=reviewer, notes="Needs icon.")

    listing = developer_client.get(PLUGINS)

    assert listing.status_code == 200
    [plugin] = listing.json()
    assert plugin["id"] == "time-tracker"
    assert plugin["versions"][0]["status"] == "rejected"
    assert plugin["versions"][0]["reviews"][0]["notes"] == "Needs icon."


def test_another_developers_plugin_is_not_found(submit, make_user):
    from apps.accounts.testing import client_for

    submit()
    intruder = client_for(make_user("intruder@example.com", email_verified=True))

    assert intruder.get(f"{PLUGINS}/time-tracker").status_code == 404
    assert upload_package(intruder, "time-tracker", "1.0.0", make_zip()).status_code == 404
    assert intruder.post(f"{PLUGINS}/time-tracker/versions/1.0.0/submit").status_code == 404


DEVELOPER_REQUESTS = [
    ("get", PLUGINS, None),
    ("post", PLUGINS, {"manifest": manifest(price_cents=499)}),
    ("get", f"{PLUGINS}/time-tracker", None),
    ("post", f"{PLUGINS}/time-tracker/versions", {"manifest": manifest(version="1.1.0")}),
    ("post", f"{PLUGINS}/time-tracker/versions/1.0.0/submit", None),
    ("get", "/api/v1/plugins/developer/earnings", {"period": "2026-01"}),
    ("get", "/api/v1/plugins/developer/connect", None),
]


@pytest.mark.parametrize(("method", "path", "body"), DEVELOPER_REQUESTS)
def test_an_unverified_account_is_refused_every_developer_endpoint(make_user, method, path, body):
    # given: a free-tier account whose address is not verified
    client = client_for(make_user("unverified-dev@example.com"))

    # when
    response = getattr(client, method)(path, body, format="json") if method == "post" else client.get(path, body)

    # then
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "email_not_verified"
    assert not Plugin.objects.exists()


def test_a_verified_free_tier_account_may_publish_a_paid_plugin(make_user):
    # given: free tier (the catalog needs a marketplace tier) but a verified address
    client = client_for(make_user("free-dev@example.com", email_verified=True))
    assert client.get("/api/v1/plugins").status_code == 403

    # when
    created = client.post(PLUGINS, {"manifest": manifest(price_cents=499)}, format="json")

    # then: developers need no paid tier to sell
    assert created.status_code == 201, created.content
    assert Plugin.objects.get().price_cents == 499
