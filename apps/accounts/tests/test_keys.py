"""Per-user Fernet keys: wrapped under the master keys, unreadable from the database alone."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import async_to_sync
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from apps.accounts import keys
from apps.accounts.models import UserKey
from apps.core import encryption

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    keys.user_keys_forget()
    encryption._master.cache_clear()
    yield
    keys.user_keys_forget()
    encryption._master.cache_clear()


def _stored_key_bytes(user) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wrapped_key FROM accounts_userkey WHERE user_id = %s", [user.id])
        return bytes(cursor.fetchone()[0])


def test_every_new_user_gets_a_working_key(user):
    secret = keys.encrypt_for_user(user_id=user.id, plaintext="meet the client at 10")

    assert b"meet the client" not in secret
    assert keys.decrypt_for_user(user_id=user.id, token=secret) == "meet the client at 10"


def test_the_database_alone_cannot_open_a_users_data(user):
    # given ciphertext and everything the database holds about the key
    secret = keys.encrypt_for_user(user_id=user.id, plaintext="private")
    stored = _stored_key_bytes(user)

    # then the stored bytes are not a usable Fernet key
    with pytest.raises((ValueError, InvalidToken)):
        Fernet(stored).decrypt(secret)
    # and they only open with the server master key
    raw = encryption.unwrap_key(stored)
    assert Fernet(raw).decrypt(secret) == b"private"


def test_users_keys_differ(make_user):
    a, b = make_user(), make_user()
    secret = keys.encrypt_for_user(user_id=a.id, plaintext="mine")

    with pytest.raises(InvalidToken):
        keys.decrypt_for_user(user_id=b.id, token=secret)


def test_rotation_rewraps_every_key_under_the_new_master(settings, make_user):
    # given users and data encrypted before rotation
    users = [make_user() for _ in range(3)]
    secrets_before = {u.id: keys.encrypt_for_user(user_id=u.id, plaintext=f"data of {u.email}") for u in users}
    old_master = settings.FERNET_MASTER_KEYS[0]
    new_master = Fernet.generate_key().decode()

    # when a new master key is put first and the command runs
    with override_settings(FERNET_MASTER_KEYS=[new_master, old_master]):
        encryption._master.cache_clear()
        call_command("rotate_master_keys", "--batch-size", "2")

    # then every wrapped key opens with the new master alone, and old data still decrypts
    with override_settings(FERNET_MASTER_KEYS=[new_master]):
        encryption._master.cache_clear()
        keys.user_keys_forget()
        for u in users:
            assert keys.decrypt_for_user(user_id=u.id, token=secrets_before[u.id]) == f"data of {u.email}"
        assert UserKey.objects.filter(rotated_at__isnull=True).count() == 0


def test_every_user_the_manager_creates_has_a_key_at_once():
    from apps.accounts.models import User

    # when a user is made by registration's manager call, and a superuser as createsuperuser makes one
    member = User.objects.create_user("member@example.com", "pw-123456789")
    admin = User.objects.create_superuser("admin@example.com", "pw-123456789")

    # then both have their wrapped key already, before anything of theirs is encrypted
    assert set(UserKey.objects.filter(user__in=[member, admin]).values_list("user_id", flat=True)) == {
        member.id,
        admin.id,
    }
    assert Fernet(encryption.unwrap_key(_stored_key_bytes(admin)))  # a real key under the master keys


def test_a_key_made_inside_a_transaction_that_rolls_back_is_not_kept_in_memory(user):
    from django.db import transaction

    # given a user whose key row is missing (made before keys existed, or by a path that skips them)
    UserKey.objects.filter(user=user).delete()

    # when their first encryption makes a key inside a transaction that then rolls back
    def seal_then_roll_back() -> None:
        with transaction.atomic():
            keys.user_fernet(user_id=user.id).encrypt(b"lost with the transaction")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        seal_then_roll_back()

    # then the next encryption uses a key that is stored, so any process can read what it seals
    token = keys.encrypt_for_user(user_id=user.id, plaintext="kept")
    assert Fernet(encryption.unwrap_key(_stored_key_bytes(user))).decrypt(token) == b"kept"


def test_a_key_not_in_memory_is_looked_up_in_the_thread_not_on_the_event_loop(user, monkeypatch):
    # given a token of the user's and no key of theirs in memory, where Django would not refuse a
    # query on the event loop (an operator's DJANGO_ALLOW_ASYNC_UNSAFE)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    token = keys.encrypt_for_user(user_id=user.id, plaintext="opened on the loop")
    keys.user_keys_forget()
    loop_threads: list[int] = []
    query_threads: list[int] = []

    def watched(execute, sql, params, many, context):
        query_threads.append(threading.get_ident())
        return execute(sql, params, many, context)

    async def opened() -> bytes:
        loop_threads.append(threading.get_ident())
        return (await keys.auser_fernet_reader(user_id=user.id)).open(token)

    # when code on an event loop asks for the user's reader
    with connection.execute_wrapper(watched):
        plaintext = async_to_sync(opened)()

    # then the key was looked up by a query in the thread (the test's connection), none on the loop
    assert plaintext == b"opened on the loop"
    assert query_threads
    assert loop_threads[0] not in query_threads


def test_a_key_in_memory_is_read_on_the_event_loop_with_no_query_and_no_thread(user, monkeypatch):
    # given the user's key in memory (something of theirs was sealed)
    token = keys.encrypt_for_user(user_id=user.id, plaintext="in memory")

    def no_thread(func):
        raise AssertionError(f"{func} was sent to a thread")

    monkeypatch.setattr(keys, "sync_to_async", no_thread)

    async def opened() -> bytes:
        return (await keys.auser_fernet_reader(user_id=user.id)).open(token)

    # when code on an event loop asks for the user's reader, then it reads the key where it is
    with CaptureQueriesContext(connection) as queries:
        assert async_to_sync(opened)() == b"in memory"
    assert len(queries) == 0


def test_a_thread_keeps_one_reader_per_key_and_every_batch_it_opens_is_right(make_user):
    # given two users' tokens
    a, b = make_user(), make_user()
    texts = [f"memory {i}" * (i + 1) for i in range(12)]
    sealed_a = [keys.encrypt_for_user(user_id=a.id, plaintext=text) for text in texts]
    sealed_b = [keys.encrypt_for_user(user_id=b.id, plaintext=text) for text in texts]

    # when one thread opens batch after batch of them, a refused batch among them
    reader = keys.user_fernet_reader(user_id=a.id)
    first = reader.open_many(sealed_a[:5])
    with pytest.raises(InvalidToken):
        keys.user_fernet_reader(user_id=a.id).open_many([sealed_a[5], sealed_b[6]])
    second = keys.user_fernet_reader(user_id=a.id).open_many(sealed_a[5:])
    single = keys.user_fernet_reader(user_id=a.id).open(sealed_a[3])
    others = keys.user_fernet_reader(user_id=b.id).open_many(sealed_b)

    # then the thread was handed the same reader for the same key, another for another key, and
    # every batch opened as Fernet opens it
    assert keys.user_fernet_reader(user_id=a.id) is reader
    assert keys.user_fernet_reader(user_id=b.id) is not reader
    assert [text.decode() for text in first + second] == texts
    assert single.decode() == texts[3]
    assert [text.decode() for text in others] == texts


def test_another_thread_gets_a_reader_of_its_own(user):
    # a reader's AES context must not be used by two threads at once
    mine = keys.user_fernet_reader(user_id=user.id)
    theirs: list[object] = []
    # (the key is in memory now: the other thread reads it there, with no query)
    thread = threading.Thread(target=lambda: theirs.append(keys.user_fernet_reader(user_id=user.id)))
    thread.start()
    thread.join()

    assert len(theirs) == 1
    assert theirs[0] is not mine
    assert keys.user_fernet_reader(user_id=user.id) is mine


def test_forgetting_the_keys_drops_every_threads_readers_too(user):
    # given a reader this thread and another, long-lived thread each keep for the user's key
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as other_thread:
        mine = keys.user_fernet_reader(user_id=user.id)
        theirs = other_thread.submit(keys.user_fernet_reader, user_id=user.id).result()
        assert other_thread.submit(keys.user_fernet_reader, user_id=user.id).result() is theirs

        # when the process forgets its keys
        keys.user_keys_forget()

        # then neither thread is handed a reader it made before (each is made again from the key)
        assert keys.user_fernet_reader(user_id=user.id) is not mine
        assert other_thread.submit(keys.user_fernet_reader, user_id=user.id).result() is not theirs
