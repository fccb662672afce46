"""A raw read of the memory tables holds no plaintext: only Fernet tokens, digests and vectors."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.db import connection

from apps.accounts.keys import user_fernet
from apps.memory.services import associative_memory_add, core_memory_set, episode_record, pattern_upsert

from .conftest import axis_embedding

pytestmark = pytest.mark.django_db

SECRETS = [
    "timezone-KEY-7f3a",
    "Europe/Paris-VALUE-7f3a",
    "allergic to peanuts CONTENT-7f3a",
    "task-TYPE-7f3a",
    "entity-ID-7f3a",
    "discussed the divorce SUMMARY-7f3a",
    "drinks at 6pm PATTERN-7f3a",
]
TABLES = [
    "memory_corememory",
    "memory_associativememory",
    "memory_episode",
    "memory_proactivepattern",
    "memory_memorykey",
]


def _dump() -> bytes:
    """Every column of every memory table as PostgreSQL prints it (like pg_dump would)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT t::text FROM {table} t")  # fixed table names, no input
            chunks += [row[0] for row in cursor.fetchall()]
    return "\n".join(chunks).encode()


def test_raw_tables_hold_no_plaintext_of_any_content_field(user):
    # given
    core_memory_set(user_id=user.id, key=SECRETS[0], value=SECRETS[1])
    associative_memory_add(
        user_id=user.id, content=SECRETS[2], embedding=axis_embedding(1), entity_type=SECRETS[3], entity_id=SECRETS[4]
    )
    episode_record(user_id=user.id, session_id="session-1", summary=SECRETS[5], embedding=axis_embedding(1))
    pattern_upsert(user_id=user.id, description=SECRETS[6], confidence=0.9)
    # when
    dump = _dump()
    # then: no secret, nor its hex (bytea's text form), appears anywhere
    assert dump.count(b"\n") >= 4
    for secret in SECRETS:
        assert secret.encode() not in dump
        assert secret.encode().hex().encode() not in dump


def test_stored_columns_are_fernet_tokens_of_the_owner_key(user, make_user):
    # given
    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    # when
    with connection.cursor() as cursor:
        cursor.execute("SELECT key_encrypted, value_encrypted FROM memory_corememory")
        key_token, value_token = cursor.fetchone()
    # then: the owner's key opens them, another user's key does not
    assert user_fernet(user_id=user.id).decrypt(bytes(value_token)) == b"UTC"
    assert user_fernet(user_id=user.id).decrypt(bytes(key_token)) == b"timezone"
    other = make_user()
    with pytest.raises(InvalidToken):
        user_fernet(user_id=other.id).decrypt(bytes(value_token))
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(bytes(value_token))


def test_a_page_holding_another_users_token_is_refused(user, make_user, embed):
    # given a page of the user's associative memories, one of whose tokens is another user's
    from apps.memory.models import AssociativeMemory, MemoryKind
    from apps.memory.selectors import memory_page

    for i in range(3):
        associative_memory_add(user_id=user.id, content=f"fact {i}", embedding=embed(1.0, i), entity_type="topic")
    other = make_user()
    foreign = user_fernet(user_id=other.id).encrypt(b"someone else's")
    oldest = AssociativeMemory.objects.filter(user_id=user.id).order_by("created_at")[0]
    AssociativeMemory.objects.filter(pk=oldest.pk).update(content_encrypted=foreign)

    # when the page is read (its tokens are opened as one batch), then it is refused as a whole
    with pytest.raises(InvalidToken):
        memory_page(user_id=user.id, kind=MemoryKind.ASSOCIATIVE, offset=0, limit=20)
    # and without the foreign token the same page opens
    AssociativeMemory.objects.filter(pk=oldest.pk).delete()
    views, total = memory_page(user_id=user.id, kind=MemoryKind.ASSOCIATIVE, offset=0, limit=20)
    assert ([view["content"] for view in views], total) == (["fact 2", "fact 1"], 2)


def test_unsealer_answers_the_same_with_and_without_its_batch(user):
    from apps.memory.crypto import Unsealer, seal

    tokens = [seal(user_id=user.id, text=text) for text in ["", "tea", "é" * 40, "tea"]]
    batched = Unsealer(user_id=user.id)
    batched.preload([*tokens[:3], None])
    alone = Unsealer(user_id=user.id)
    # the 4th token was not in the batch: opened by itself
    assert [batched(memoryview(token)) for token in tokens] == [alone(token) for token in tokens]
    assert [alone(token) for token in tokens] == ["", "tea", "é" * 40, "tea"]
