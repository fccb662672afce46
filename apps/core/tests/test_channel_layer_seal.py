"""Channel-layer messages in Redis: sealed with AES-GCM under per-process keys, read back by any
process with the keys, refused when old, tampered or foreign; the previous release's Fernet tokens
still read, and sealed as it reads them during a roll."""

from __future__ import annotations

import os
import time

import msgpack
import pytest
import redis.asyncio as aioredis
from channels.layers import channel_layers
from channels_redis.serializers import MsgPackSerializer
from django.conf import settings as django_settings

from apps.core import encryption
from apps.core.channel_layer_seal import SealedMsgPackSerializer
from apps.core.encryption import InvalidToken, TransitSealer

KEYS = ["redis:first", "redis:second"]
MESSAGE = {"type": "agent.data", "files": [{"path": "notes/a.md", "text": "a private meeting note"}], "n": 7}


def _serializer(keys: list[str] = KEYS, expiry: int = 60) -> SealedMsgPackSerializer:
    return SealedMsgPackSerializer(symmetric_encryption_keys=keys, random_prefix_length=12, expiry=expiry)


def _stock(keys: list[str] = KEYS, expiry: int = 60) -> MsgPackSerializer:
    """channels-redis' own serializer: what a process of the previous release seals and reads."""
    return MsgPackSerializer(symmetric_encryption_keys=keys, random_prefix_length=12, expiry=expiry)


def test_a_message_is_sealed_and_read_back_by_another_process_with_the_keys() -> None:
    sealed = _serializer().serialize(MESSAGE)

    assert b"a private meeting note" not in sealed
    assert b"notes/a.md" not in sealed
    assert _serializer().deserialize(sealed) == MESSAGE  # another instance: keys derived anew


def test_it_is_not_a_fernet_token_and_is_smaller_than_one() -> None:
    ours, stock = _serializer().serialize(MESSAGE), _stock().serialize(MESSAGE)

    with pytest.raises(InvalidToken):
        _stock().deserialize(ours)
    assert len(ours) < len(stock)


def test_the_previous_release_tokens_are_read() -> None:
    assert _serializer().deserialize(_stock().serialize(MESSAGE)) == MESSAGE


def test_during_a_roll_messages_are_sealed_as_the_previous_release_reads_them(settings) -> None:
    settings.CHANNEL_LAYER_SEAL = "fernet"

    sealed = _serializer().serialize(MESSAGE)

    assert b"a private meeting note" not in sealed
    assert _stock().deserialize(sealed) == MESSAGE
    assert _serializer().deserialize(sealed) == MESSAGE


def test_after_a_rotation_a_message_sealed_under_the_old_key_still_opens() -> None:
    sealed = _serializer(keys=["redis:old"]).serialize(MESSAGE)

    assert _serializer(keys=["redis:new", "redis:old"]).deserialize(sealed) == MESSAGE
    with pytest.raises(InvalidToken):
        _serializer(keys=["redis:new"]).deserialize(sealed)


def test_a_message_older_than_the_expiry_or_from_the_future_is_refused(monkeypatch) -> None:
    # given a message sealed now, read by a layer whose expiry is 60 s (tokens live 70 s, as with Fernet)
    sealed = _serializer(expiry=60).serialize(MESSAGE)
    real_time = time.time

    # then 69 s later it opens, 71 s later it does not
    monkeypatch.setattr(time, "time", lambda: real_time() + 69)
    assert _serializer(expiry=60).deserialize(sealed) == MESSAGE
    monkeypatch.setattr(time, "time", lambda: real_time() + 71)
    with pytest.raises(InvalidToken):
        _serializer(expiry=60).deserialize(sealed)

    # and a message stamped more than a minute ahead of the reader's clock is refused
    monkeypatch.setattr(time, "time", lambda: real_time() + 120)
    ahead = _serializer(expiry=60).serialize(MESSAGE)
    monkeypatch.setattr(time, "time", real_time)
    with pytest.raises(InvalidToken):
        _serializer(expiry=60).deserialize(ahead)


def _restamped(sealed: bytes, seconds: int) -> bytes:
    prefix, stamp, rest = sealed[:12], sealed[12:20], sealed[20:]
    return prefix + (int.from_bytes(stamp, "big") + seconds).to_bytes(8, "big") + rest


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="last byte of the tag"),
        # after channels-redis' 12-byte prefix: the stamp (8), the version (1), the salt (16), the nonce
        pytest.param(lambda b: b[:25] + bytes([b[25] ^ 1]) + b[26:], id="a byte of the salt"),
        pytest.param(lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], id="a byte of the nonce"),
        pytest.param(lambda b: _restamped(b, -5), id="the stamp moved back (authenticated)"),
        pytest.param(lambda b: b[:20] + b"\x07" + b[21:], id="an unknown version"),
        pytest.param(lambda b: b[:30], id="cut short"),
        pytest.param(lambda b: b[:12] + b"\x00" * 3, id="shorter than a stamp"),
    ],
)
def test_a_tampered_or_truncated_message_is_refused(tamper) -> None:
    with pytest.raises(InvalidToken):
        _serializer().deserialize(tamper(_serializer().serialize(MESSAGE)))


def test_the_layer_keys_are_not_the_node_message_keys() -> None:
    # the same Redis keys, two purposes: a node message does not open as a channel-layer message
    node_sealed = encryption.transit_seal(msgpack.packb(MESSAGE))
    stamp = int(time.time()).to_bytes(8, "big")

    with pytest.raises(InvalidToken):
        _serializer(keys=list(django_settings.REDIS_ENCRYPTION_KEYS)).deserialize(b"\x00" * 12 + stamp + node_sealed)


def test_the_serializer_refuses_to_run_without_keys() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        _serializer(keys=[])


def test_each_process_seals_under_a_key_of_its_own_and_a_new_one_after_a_fork(monkeypatch) -> None:
    sealer = TransitSealer(("redis:k",), b"test:")
    salt = sealer.seal(b"x")[1:17]

    # the same process keeps its salt; another sealer (another process) draws its own
    assert sealer.seal(b"x")[1:17] == salt
    assert TransitSealer(("redis:k",), b"test:").seal(b"x")[1:17] != salt

    # a forked child (another pid) draws a new salt on its first message, and its messages still open
    monkeypatch.setattr(os, "getpid", lambda: -1)
    child = sealer.seal(b"from the child")
    assert child[1:17] != salt
    assert TransitSealer(("redis:k",), b"test:").open(child) == b"from the child"


def test_a_key_seals_at_most_its_epoch_of_messages(monkeypatch) -> None:
    monkeypatch.setattr(encryption, "EPOCH_MESSAGES", 3)
    sealer = TransitSealer(("redis:k",), b"test:")

    salts = [sealer.seal(b"x")[1:17] for _ in range(7)]

    assert salts[0] == salts[1] == salts[2] != salts[3]
    assert salts[3] == salts[4] == salts[5] != salts[6]
    assert len({*salts}) == 3


def test_an_opened_salt_is_derived_once_and_a_forged_one_is_not_kept(monkeypatch) -> None:
    sender, reader = TransitSealer(("redis:k",), b"test:"), TransitSealer(("redis:k",), b"test:")
    derivations: list[bytes] = []
    real = encryption._epoch_key

    def counted(key: bytes, salt: bytes) -> bytes:
        derivations.append(salt)
        return real(key, salt)

    monkeypatch.setattr(encryption, "_epoch_key", counted)

    # when the reader opens three messages of one sending epoch
    for _ in range(3):
        assert reader.open(sender.seal(b"m")) == b"m"
    # then it derived that epoch's key once
    assert len(derivations) == 1

    # and a message under a salt no process sent is refused every time, its key derived and forgotten
    forged = bytearray(sender.seal(b"m"))
    forged[1] ^= 1
    for _ in range(2):
        with pytest.raises(InvalidToken):
            reader.open(bytes(forged))
    assert len(derivations) == 3
    assert len(reader._opening) == 1


async def test_a_message_crosses_a_real_channel_layer_sealed() -> None:
    # given the layer as configured, and a channel on it
    layer = channel_layers.make_backend("default")
    channel = await layer.new_channel()

    # when a message waits in Redis for its reader
    await layer.send(channel, MESSAGE)
    redis = aioredis.from_url(layer.hosts[0]["address"])
    try:
        stored = [value for key in await redis.keys("asgi*") for value in await redis.zrange(key, 0, -1)]
        assert all(isinstance(value, bytes) for value in stored)
    finally:
        await redis.aclose()

    # then what rests there is sealed with this release's layout, and the reader gets the message
    assert stored
    assert all(b"a private meeting note" not in value for value in stored)
    assert all(not bytes(value)[12:].startswith(b"gAAAAA") for value in stored)  # type: ignore[arg-type]
    assert await layer.receive(channel) == MESSAGE
    await layer.flush()


def test_equal_messages_are_sealed_apart() -> None:
    # channels-redis keeps waiting messages in a sorted set: two equal messages must not collapse into one
    serializer = _serializer()
    assert len({serializer.serialize({"type": "x"})[12:] for _ in range(50)}) == 50  # past the random prefix
