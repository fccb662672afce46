"""Queries compiled once per process answer exactly as the ORM queryset they were built from."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from allauth.account.models import EmailAddress
from django.core.exceptions import ValidationError
from django.db.models.functions import Upper
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from apps.accounts.models import TokenFamily, User
from apps.accounts.selectors import user_email_verified
from apps.accounts.tokens import session_is_active, tokens_issue
from apps.core.compiled_queries import CompiledQuery
from apps.core.errors import NotFoundError

pytestmark = pytest.mark.django_db


def _family_of(user: User) -> str:
    tokens_issue(user=user)
    return str(TokenFamily.objects.filter(user=user).latest("created_at").pk)


def test_session_check_returns_the_user_with_the_same_fields_loaded_as_the_orm(user):
    # given an open session
    family_id = _family_of(user)

    # when the compiled session check runs
    found = session_is_active(user_id=str(user.pk), family_id=family_id)

    # then it is the user, with the fields the queryset's only() names and nothing else loaded
    assert found is not None
    assert found.pk == user.pk
    assert (found.email, found.tier, found.time_zone, found.is_active) == (
        user.email,
        user.tier,
        user.time_zone,
        True,
    )
    orm = User.objects.only("id", "email", "tier", "time_zone", "is_active", "is_staff", "is_superuser").get(pk=user.pk)
    assert found.get_deferred_fields() == orm.get_deferred_fields()


@pytest.mark.parametrize("with_email_verified", [False, True])
def test_session_check_refuses_revoked_foreign_and_inactive_sessions(user, make_user, with_email_verified):
    family_id = _family_of(user)
    other = make_user("bob@example.com")

    def check(user_id: str, family: str) -> User | None:
        return session_is_active(user_id=user_id, family_id=family, with_email_verified=with_email_verified)

    assert check(str(user.pk), family_id) is not None
    # someone else's session, an unknown session, an inactive user, a revoked session
    assert check(str(other.pk), family_id) is None
    assert check(str(user.pk), str(uuid.uuid4())) is None
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert check(str(user.pk), family_id) is None
    User.objects.filter(pk=user.pk).update(is_active=True)
    TokenFamily.objects.filter(pk=family_id).update(revoked_at=timezone.now())
    assert check(str(user.pk), family_id) is None


def test_first_loads_an_instance_as_the_orm_does_with_its_annotations(user):
    # given a compiled query with an annotation
    by_id = CompiledQuery(
        lambda user_id: User.objects.filter(id=user_id).only("id", "email").annotate(shout=Upper("email")),
        user_id=User._meta.pk,
    )

    # when its first row is loaded
    found = by_id.first(user_id=str(user.pk))

    # then it is a saved instance of the database, with the annotation as an attribute
    orm = User.objects.filter(id=user.pk).only("id", "email").annotate(shout=Upper("email")).get()
    assert found is not None
    assert (found.pk, found.email, found.shout) == (orm.pk, orm.email, orm.shout)
    assert (found._state.adding, found._state.db) == (False, "default")
    assert found.get_deferred_fields() == orm.get_deferred_fields()
    found.email = "renamed@example.com"
    found.save(update_fields=["email"])
    assert User.objects.get(pk=user.pk).email == "renamed@example.com"


def test_session_check_with_a_malformed_id_raises_djangos_validation_error_like_the_orm(user):
    with pytest.raises(ValidationError):
        session_is_active(user_id="not-a-uuid", family_id=_family_of(user))


def test_the_sql_is_compiled_once_and_later_calls_only_bind_values(user, monkeypatch):
    # given the query compiled by a first call
    family_id = _family_of(user)
    session_is_active(user_id=str(user.pk), family_id=family_id)
    compiled: list[object] = []
    original = SQLCompiler.as_sql

    def counting_as_sql(self, *args, **kwargs):
        compiled.append(self.query.model)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting_as_sql)

    # when it runs again
    found = session_is_active(user_id=str(user.pk), family_id=family_id)

    # then the answer is the same and the ORM compiler was not asked again
    assert found is not None
    assert found.pk == user.pk
    assert User not in compiled


def test_verified_address_matches_case_insensitively_and_never_as_a_pattern(make_user):
    # given a user whose address has LIKE wildcards, verified in other letter case
    user = make_user("a_b%c@example.com")
    lookalike = make_user("axbyc@example.com")
    EmailAddress.objects.create(user=user, email="A_B%C@EXAMPLE.COM", verified=True, primary=True)
    EmailAddress.objects.create(user=lookalike, email="axbyc@example.com", verified=False, primary=True)

    assert user_email_verified(user=user) is True
    # the wildcards are literal characters: "a_b%c" does not match "axbyc"'s row
    lookalike.email = "a_b%c@example.com"
    assert user_email_verified(user=lookalike) is False


def test_a_lookup_that_rewrites_the_value_is_refused_when_compiled():
    query = CompiledQuery(lambda email: User.objects.filter(email__contains=email), email=User._meta.get_field("email"))

    with pytest.raises(ValueError, match="does not use 'email'"):
        query.first(email="x")


def test_a_record_is_found_only_by_its_owner_with_every_field_loaded(make_user, blob_dir, settings):
    # given a record of one user (on a tier that stores records)
    from apps.storage.records import record_create
    from apps.storage.selectors import record_get

    owner, stranger = make_user("owner@example.com", tier="power"), make_user("stranger@example.com")
    blob = b"ciphertext"
    record = record_create(user=owner, table="tasks", blob=blob, checksum=hashlib.sha256(blob).hexdigest())

    # when its owner and someone else ask for it
    found = record_get(user=owner, record_id=record.pk)

    # then the owner gets the whole row, the other user a not-found error
    assert found.pk == record.pk
    assert (found.blob_key, found.checksum, found.size_bytes) == (record.blob_key, record.checksum, record.size_bytes)
    assert found.get_deferred_fields() == set()
    with pytest.raises(NotFoundError):
        record_get(user=stranger, record_id=record.pk)


def _records_of(user: User, n: int) -> list:
    from apps.storage.records import record_create

    made = []
    for i in range(n):
        blob = f"ciphertext {i}".encode()
        made.append(record_create(user=user, table="tasks", blob=blob, checksum=hashlib.sha256(blob).hexdigest()))
    return made


def test_first_of_a_filter_matching_many_rows_is_the_orms_first(make_user, blob_dir):
    # given three records of one user, the newest made last (the model orders newest first)
    from apps.storage.models import StorageRecord

    owner = make_user("owner@example.com", tier="power")
    _records_of(owner, 3)
    user_field = StorageRecord._meta.get_field("user").target_field
    by_owner = CompiledQuery(lambda user_id: StorageRecord.objects.filter(user_id=user_id), user_id=user_field)
    # and a query with no ordering of its own
    unordered = CompiledQuery(
        lambda user_id: StorageRecord.objects.filter(user_id=user_id).order_by(), user_id=user_field
    )

    # when the compiled first() runs, then it is the row the ORM's first() answers
    expected = StorageRecord.objects.filter(user=owner).first()
    assert expected is not None
    found = by_owner.first(user_id=owner.pk)
    assert found is not None
    assert found.pk == expected.pk
    found_unordered = unordered.first(user_id=owner.pk)
    assert found_unordered is not None
    assert found_unordered.pk == StorageRecord.objects.filter(user=owner).order_by().first().pk
