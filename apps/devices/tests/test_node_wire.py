"""Node messages on the wire: RESP read as it arrives, and connections that come back after a drop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.devices.node import NODE_CHANNEL, encode, loop_node, node_publish, register_message_handler
from apps.devices.node_wire import (
    SUBSCRIPTION_CLIENT,
    NodeSubscription,
    Publisher,
    RespError,
    RespReader,
    command,
)
from apps.devices.realtime_redis import loop_publisher, loop_redis

REPLIES = (
    b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchan\r\n:1\r\n"
    b"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhe\r\nl\r\n"
    b">3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$0\r\n\r\n"
    b":42\r\n-ERR wrong\r\n+OK\r\n$-1\r\n"
)
EXPECTED = [
    [b"subscribe", b"chan", 1],
    [b"message", b"chan", b"he\r\nl"],
    [b"message", b"chan", b""],
    42,
    RespError("ERR wrong"),
    b"OK",
    None,
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, len(REPLIES)])
def test_replies_split_anywhere_read_back_whole_and_in_order(chunk) -> None:
    reader = RespReader()
    values = []
    for at in range(0, len(REPLIES), chunk):
        values.extend(reader.feed(REPLIES[at : at + chunk]))
    assert values == EXPECTED
    assert isinstance(values[4], RespError)


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert command(b"PUBLISH", "chan", b"a\r\nb") == b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nchan\r\n$4\r\na\r\nb\r\n"


async def _kill_clients(name_prefix: str) -> int:
    redis = loop_redis()
    killed = 0
    for client in await redis.client_list():
        if client.get("name", "").startswith(name_prefix):
            killed += int(await redis.client_kill_filter(_id=client["id"]))
    return killed


def test_a_node_hears_again_after_its_connections_are_killed() -> None:
    heard: list[int] = []

    async def note(message: dict) -> None:
        heard.append(message["n"])

    register_message_handler("test.node_wire", note)

    async def loop() -> tuple[int, int, list[int]]:
        node = await loop_node()
        assert await node_publish(node.name, {"type": "test.node_wire", "n": 1}) == 1
        # when Redis drops both the node's subscription and this loop's publishing connection
        killed_sub = await _kill_clients(f"{SUBSCRIPTION_CLIENT}:{NODE_CHANNEL.format(node=node.name)}")
        killed_pub = await _kill_clients(loop_publisher().client_name)
        # then within moments the node is subscribed again and a publish reaches it
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                if await node_publish(node.name, {"type": "test.node_wire", "n": 2}) == 1:
                    break
            except RedisConnectionError:
                continue
        for _ in range(100):
            if 2 in heard:
                break
            await asyncio.sleep(0.02)
        return killed_sub, killed_pub, heard

    killed_sub, killed_pub, seen = asyncio.run(loop())
    assert (killed_sub, killed_pub) == (1, 1)
    assert seen[0] == 1
    assert 2 in seen


def test_a_script_runs_on_the_node_connection_whether_or_not_redis_knows_it() -> None:
    source = "return {ARGV[1], tonumber(ARGV[2]) + 1, redis.call('EXISTS', KEYS[1])}"

    async def loop() -> list:
        await loop_redis().script_flush()
        first = await loop_publisher().run_script(source, keys=["test:node_wire:none"], args=[b"a\r\nb", 41])
        second = await loop_publisher().run_script(source, keys=["test:node_wire:none"], args=["c", 1])
        return [first, second]

    assert asyncio.run(loop()) == [[b"a\r\nb", 42, 0], [b"c", 2, 0]]


def test_the_node_connection_works_on_the_urls_database() -> None:
    # given a key in the cache's database (the URL names one; pub/sub alone would not notice a miss)
    async def loop() -> object:
        await loop_redis().set("test:node_wire:db", b"here", ex=60)
        script = "return redis.call('GET', KEYS[1])"
        return await loop_publisher().run_script(script, keys=["test:node_wire:db"], args=[])

    # then a script on the node connection reads it
    assert asyncio.run(loop()) == b"here"


def test_a_node_connection_refused_by_redis_fails_with_its_reason(settings) -> None:
    # given a URL whose credentials Redis refuses
    plain = urlsplit(str(settings.CACHES["default"]["LOCATION"]))
    address = f"{plain.hostname}:{plain.port or 6379}" if plain.scheme != "unix" else ""
    refused = plain._replace(netloc=f"nobody:wrong-password@{address}")
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": refused.geturl()}}

    async def loop() -> None:
        await NodeSubscription("test:node_wire:refused", lambda data: None).open()

    # when a node connection opens, then it fails as an authentication error, not a hang
    with pytest.raises(AuthenticationError):
        asyncio.run(loop())


def test_a_message_right_behind_the_subscription_confirmation_is_delivered(settings) -> None:
    # given a server that answers the handshake, confirms the subscription and sends a message, all
    # in one write (a Redis busy with publishers can)
    async def loop() -> list[bytes]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"SUBSCRIBE\r\n$4\r\nchan\r\n")
            writer.write(b"+OK\r\n" + REPLIES[: REPLIES.index(b"$5\r\nhe") + 13])
            await writer.drain()
            await reader.read()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings.CACHES = {
            **settings.CACHES,
            "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"},
        }
        heard: list[bytes] = []
        subscription = NodeSubscription("chan", heard.append)
        try:
            # when it subscribes
            await subscription.open()
            return heard
        finally:
            await subscription.close()
            server.close()

    # then the message is delivered, not taken for part of the handshake
    assert asyncio.run(loop()) == [b"he\r\nl"]


def test_a_publish_redis_leaves_unanswered_fails_after_the_socket_timeout(settings) -> None:
    settings.DEVICE_REDIS_SOCKET_TIMEOUT = 0.3

    async def loop() -> tuple[BaseException | int, int]:
        publisher = loop_publisher()
        assert await publisher.publish("test:node_wire:hung", b"before") == 0
        # Redis holds every PUBLISH for 3 s; with the timeout ignored the publish would succeed after it
        redis = loop_redis()
        await redis.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
        try:
            during: BaseException | int = await publisher.publish("test:node_wire:hung", b"during")
        except RedisTimeoutError as exc:
            during = exc
        finally:
            await redis.execute_command("CLIENT", "UNPAUSE")
        # and once Redis answers again, the next publish goes through (on a new connection)
        return during, await publisher.publish("test:node_wire:hung", b"after")

    during, after = asyncio.run(loop())
    assert isinstance(during, RedisTimeoutError)
    assert after == 0


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


def test_node_messages_cross_a_rediss_url(settings, tmp_path) -> None:
    # The embedded Redis has no TLS: a TLS terminator in front of it stands in for a rediss:// server.
    cert, key = _self_signed(tmp_path)
    plain = urlsplit(str(settings.CACHES["default"]["LOCATION"]))
    database = parse_qs(plain.query).get("db", [plain.path.strip("/") or "0"])[0]

    async def loop() -> tuple[int, list[bytes]]:
        async def terminate(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            if plain.scheme == "unix":
                redis_reader, redis_writer = await asyncio.open_unix_connection(plain.path)
            else:
                redis_reader, redis_writer = await asyncio.open_connection(plain.hostname, plain.port or 6379)
            await asyncio.gather(_pipe(client_reader, redis_writer), _pipe(redis_reader, client_writer))

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        server = await asyncio.start_server(terminate, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        password = f":{plain.password}@" if plain.password else ""
        settings.CACHES = {
            **settings.CACHES,
            "default": {
                **settings.CACHES["default"],
                "LOCATION": f"rediss://{password}127.0.0.1:{port}/{database}?ssl_ca_certs={cert}&ssl_check_hostname=false",
            },
        }
        heard: list[bytes] = []
        subscription = NodeSubscription("test:node_wire:tls", heard.append)
        publisher = Publisher()
        try:
            await subscription.open()
            reading = asyncio.create_task(subscription.read_forever(stopping=lambda: False))
            listeners = await publisher.publish("test:node_wire:tls", b"over tls")
            for _ in range(250):
                if heard:
                    break
                await asyncio.sleep(0.02)
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            return listeners, heard
        finally:
            await publisher.close()
            await subscription.close()
            server.close()

    listeners, heard = asyncio.run(loop())
    assert listeners == 1
    assert heard == [b"over tls"]


def test_the_publishes_of_one_loop_iteration_cross_in_two_sends_the_first_at_once() -> None:
    heard: list[int] = []

    async def note(message: dict) -> None:
        heard.append(message["n"])

    register_message_handler("test.node_wire_burst", note)

    async def loop() -> tuple[list[int], list[int], list[int], list[int]]:
        node = await loop_node()
        publisher = Publisher()
        assert await publisher.publish(NODE_CHANNEL.format(node=node.name), b"warm") == 1  # opens the connection
        protocol = publisher._protocol
        assert protocol is not None
        assert protocol.transport is not None
        transport = protocol.transport
        sends: list[int] = []
        real_write = transport.write

        def counted(data: bytes) -> None:
            sends.append(data.count(b"PUBLISH"))
            real_write(data)

        transport.write = counted  # type: ignore[method-assign,assignment]

        # when five publishes are issued within one loop iteration
        channel = NODE_CHANNEL.format(node=node.name)
        replies = [publisher.publish_soon(channel, encode({"type": "test.node_wire_burst", "n": n})) for n in range(5)]
        # then the first went out then and there, the other four wait for the iteration's end
        sent_at_once = list(sends)
        counts = await asyncio.gather(*[reply for reply in replies if reply is not None])
        # and a lone publish in a later iteration is one send of its own
        await asyncio.sleep(0)
        lone_before = len(sends)
        assert await publisher.publish(channel, encode({"type": "test.node_wire_burst", "n": 5})) == 1
        for _ in range(100):
            if len(heard) == 6:
                break
            await asyncio.sleep(0.01)
        await publisher.close()
        return sent_at_once, sends[:2], [int(count) for count in counts], sends[lone_before:]

    sent_at_once, first_two, counts, lone = asyncio.run(loop())
    assert sent_at_once == [1]
    assert first_two == [1, 4]
    assert counts == [1] * 5  # every reply, in order, to its own publish
    assert lone == [1]
    assert heard == [0, 1, 2, 3, 4, 5]  # every message, once, in order
