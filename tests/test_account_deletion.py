# ruff: noqa: F811  (fixtures imported from other apps' conftests are parameters here)
"""DELETE auth/me: the account closes at once and nothing of the user is left in any table or
bucket afterwards (blobs on S3, grants revoked at the provider, the Stripe customer deleted)."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from django.apps import apps as django_apps
from django.db import models
from rest_framework.test import APIClient

from apps.accounts import deletion
from apps.accounts.models import User
from apps.accounts.tokens import tokens_issue
from apps.billing.subscriptions import customer_get_or_create
from apps.billing.tests.conftest import fake_stripe  # noqa: F401
from apps.connectors.tests.conftest import connect, fake, provider_settings  # noqa: F401
from apps.core.models import AuditEvent
from apps.devices.models import Device
from apps.storage.tests.conftest import moto_endpoint, s3  # noqa: F401

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows_of(user_id) -> dict[str, int]:
    """Every row of every model pointing at the user (a foreign key, or a plain ``user_id``)."""
    left: dict[str, int] = {}
    for model in django_apps.get_models():
        for field in model._meta.concrete_fields:
            points_at_user = isinstance(field, models.ForeignKey) and field.related_model is User
            if points_at_user or field.attname == "user_id":
                count = model._base_manager.filter(**{field.attname: user_id}).count()
                if count:
                    left[f"{model._meta.label}.{field.name}"] = count
    return left


def _bucket_keys(s3_client) -> list[str]:
    from apps.storage.blob_store import s3_bucket_name

    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket_name()).get("Contents", [])]


def test_deleting_the_account_leaves_nothing_of_the_user(
    make_user,
    s3,
    fake_stripe,
    connect,
    fake,
    celery_eager,
    django_capture_on_commit_callbacks,
):
    # given a pro user with data in every part of the system, and another user who keeps theirs
    user = make_user("leaving@example.com", PASSWORD, tier="pro", email_verified=True)
    other = make_user("staying@example.com", tier="pro")
    client = _client(user)
    blob = b"ciphertext"
    assert (
        client.post(
            "/api/v1/storage/records",
            {"table": "notes", "blob": base64.b64encode(blob).decode(), "checksum": _sha(blob)},
        ).status_code
        == 201
    )
    backup = client.generic(
        "PUT",
        "/api/v1/backup",
        b"backup bytes",
        content_type="application/octet-stream",
        HTTP_X_BACKUP_VERSION="1",
        HTTP_X_BACKUP_TIMESTAMP="1",
        HTTP_X_BACKUP_CHECKSUM=_sha(b"backup bytes"),
    )
    assert backup.status_code == 201, backup.content
    assert client.post("/api/v1/memory/core", {"key": "language", "value": "Italian"}).status_code == 204
    Device.objects.create(user=user, device_id="laptop", name="Laptop")
    connect(user, "gmail")
    customer = customer_get_or_create(user=user)
    _client(other).post(
        "/api/v1/storage/records", {"table": "notes", "blob": base64.b64encode(blob).decode(), "checksum": _sha(blob)}
    )
    assert rows_of(user.pk)  # the walk does see the user's rows
    keys_before = _bucket_keys(s3)
    revocations_before = fake.count("POST", "/google/revoke")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete("/api/v1/auth/me", {"password": PASSWORD}, format="json")

    # then the account is gone, and with it every row and object of theirs
    assert response.status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert rows_of(user.pk) == {}
    assert len(_bucket_keys(s3)) == 1 < len(keys_before)  # only the other user's record remains
    assert rows_of(other.pk)
    # the provider was asked to revoke the grant, Stripe to delete the customer (ending its subscription)
    assert fake.count("POST", "/google/revoke") == revocations_before + 1
    assert fake_stripe.count("DELETE", f"/v1/customers/{customer.id}") == 1
    # and the audit trail says an account was deleted, not whose
    erased = AuditEvent.objects.filter(action="account.erased").get()
    assert (erased.subject_user_id, erased.target_id, erased.data) == (None, "", {})


def test_a_wrong_password_deletes_nothing(make_user):
    user = make_user("leaving@example.com", PASSWORD)

    response = _client(user).delete("/api/v1/auth/me", {"password": "guess"}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "invalid_credentials"
    assert User.objects.get(pk=user.pk).is_active


def test_a_registered_blocker_stops_the_deletion_with_its_reason(make_user, monkeypatch):
    # given an app that says this user must first hand their team over
    user = make_user("owner@example.com", PASSWORD)
    monkeypatch.setattr(deletion, "_blockers", {"teams": lambda u: "Transfer the team 'Studio' first."})

    # when
    response = _client(user).delete("/api/v1/auth/me", {"password": PASSWORD}, format="json")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "account_deletion_blocked"
    assert response.json()["reasons"] == ["Transfer the team 'Studio' first."]
    assert User.objects.get(pk=user.pk).is_active


def test_a_failing_eraser_keeps_the_user_row_for_the_retry(make_user, monkeypatch):
    # given a closed account whose storage cannot be reached yet
    user = make_user("leaving@example.com", PASSWORD)
    User.objects.filter(pk=user.pk).update(is_active=False)

    def unreachable(user_id: uuid.UUID) -> None:
        raise OSError("storage down")

    monkeypatch.setattr(deletion, "_erasers", {"storage": unreachable})

    # when / then the erasure fails (the task retries it), and nothing was half-deleted
    with pytest.raises(OSError, match="storage down"):
        deletion.account_erase(user_id=user.pk)
    assert User.objects.filter(pk=user.pk).exists()


def _sso_code_for(user, *, expires_in: int = 60) -> str:
    """A one-time code as the SSO sign-in issues it (stored hashed), for an account with no password."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.sso.models import SsoCode

    code = f"code-{uuid.uuid4().hex}"
    SsoCode.objects.create(
        user=user,
        code_hash=hashlib.sha256(code.encode()).hexdigest(),
        expires_at=timezone.now() + timedelta(seconds=expires_in),
    )
    return code


def _sso_only_user(make_user) -> User:
    user = make_user("sso-only@example.com")
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return user


def test_an_sso_only_account_is_deleted_with_a_fresh_sign_in_code(make_user):
    # given an account with no password and a code from a fresh SSO sign-in
    user = _sso_only_user(make_user)
    code = _sso_code_for(user)

    # when
    response = _client(user).delete("/api/v1/auth/me", {"sso_code": code}, format="json")

    # then the account closes, and the code is spent
    assert response.status_code == 204
    assert not User.objects.filter(pk=user.pk, is_active=True).exists()
    second = _client(make_user("other@example.com", PASSWORD)).delete(
        "/api/v1/auth/me", {"sso_code": code}, format="json"
    )
    assert second.status_code == 403


@pytest.mark.parametrize("whose", ["another user's", "expired"])
def test_a_code_that_is_not_a_fresh_sign_in_of_this_user_deletes_nothing(make_user, whose):
    user = _sso_only_user(make_user)
    owner = user if whose == "expired" else make_user("someone@example.com")
    code = _sso_code_for(owner, expires_in=-1 if whose == "expired" else 60)

    response = _client(user).delete("/api/v1/auth/me", {"sso_code": code}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "invalid_credentials"
    assert User.objects.get(pk=user.pk).is_active


def test_deletion_needs_a_password_or_a_sign_in_code(make_user):
    user = make_user("someone@example.com", PASSWORD)

    response = _client(user).delete("/api/v1/auth/me", {}, format="json")

    assert response.status_code == 400
    assert User.objects.get(pk=user.pk).is_active
