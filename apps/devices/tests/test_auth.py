"""Handshake authentication, Origin policy and the documented close codes, on a real socket."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from apps.accounts.tokens import FAMILY_CLAIM, tokens_issue, tokens_revoke
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.middleware import DeviceSocketAuthMiddleware
from apps.devices.tests.conftest import SOCKET_DB, device_row

pytestmark = SOCKET_DB


def _short_lived_token(user, family_id: str, seconds: float) -> str:
    token = AccessToken.for_user(user)
    token[FAMILY_CLAIM] = family_id
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


def _family_of(access_token: str) -> str:
    return AccessToken(access_token)[FAMILY_CLAIM]  # type: ignore[arg-type]  # simplejwt annotates the encoded string as a Token


async def test_no_token_closes_unauthenticated(devices):
    client = await devices(None, token=None, hello=False)
    assert await client.wait_closed() == DeviceCloseCode.UNAUTHENTICATED


async def test_garbage_token_closes_unauthenticated(devices):
    client = await devices(None, token="not-a-jwt", hello=False)
    assert await client.wait_closed() == DeviceCloseCode.UNAUTHENTICATED


async def test_expired_token_closes_token_expired(devices, user):
    pair = await sync_to_async(tokens_issue)(user=user)
    token = _short_lived_token(user, _family_of(pair.access_token), -30)
    client = await devices(None, token=token, hello=False)
    assert await client.wait_closed() == DeviceCloseCode.TOKEN_EXPIRED


async def test_revoked_session_closes_session_revoked(devices, user):
    pair = await sync_to_async(tokens_issue)(user=user)
    await sync_to_async(tokens_revoke)(user=user, refresh_token=pair.refresh_token)
    client = await devices(None, token=pair.access_token, hello=False)
    assert await client.wait_closed() == DeviceCloseCode.SESSION_REVOKED


async def test_deactivated_user_closes_user_deactivated(devices, user):
    pair = await sync_to_async(tokens_issue)(user=user)
    user.is_active = False
    await sync_to_async(user.save)()
    client = await devices(None, token=pair.access_token, hello=False)
    assert await client.wait_closed() == DeviceCloseCode.USER_DEACTIVATED


@pytest.mark.parametrize("in_query", [False, True], ids=["authorization-header", "query-token"])
async def test_valid_token_in_header_or_query_gets_online(devices, user, in_query):
    client = await devices(user, token_in_query=in_query)
    row = await device_row(user, client.device_id)
    assert row.is_online


async def test_disallowed_browser_origin_is_refused_at_the_handshake(devices, user):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await devices(user, origin="https://evil.example")
    assert refused.value.response.status_code == 403


async def test_allowed_origin_is_accepted(devices, user, settings):
    settings.DEVICE_ALLOWED_ORIGINS = ["app://adiuva"]
    client = await devices(user, origin="app://adiuva")
    assert (await device_row(user, client.device_id)).is_online


@pytest.mark.parametrize("origin", ["app://adiuva", "app://adiuva-beta", "http://localhost:5173", "file://"])
async def test_the_desktop_apps_and_its_dev_servers_origins_are_accepted_by_default(devices, user, origin):
    client = await devices(user, origin=origin)
    assert (await device_row(user, client.device_id)).is_online


@pytest.mark.parametrize("origin", ["http://localhost.evil.example", "https://app.example", "http://127.0.0.2:80"])
async def test_look_alike_origins_are_refused_by_default(devices, user, origin):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await devices(user, origin=origin)
    assert refused.value.response.status_code == 403


async def test_the_socket_follows_the_cors_allow_list(devices, user, settings, client):
    # given one allow-list, configured for a web origin
    settings.CORS_ALLOWED_ORIGINS = ["https://web.example"]
    settings.CORS_ALLOWED_ORIGIN_REGEXES = [r"^https://[a-z]+\.preview\.example$"]

    # when / then REST's CORS and the socket agree, origin by origin
    for origin, allowed in [
        ("https://web.example", True),
        ("https://pr.preview.example", True),
        ("http://localhost:5173", False),
    ]:
        preflight = await sync_to_async(client.options)(
            "/api/v1/auth/me", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
        )
        assert (preflight.get("Access-Control-Allow-Origin") == origin) is allowed, origin
        if allowed:
            device = await devices(user, origin=origin)
            assert (await device_row(user, device.device_id)).is_online
        else:
            with pytest.raises(websockets.InvalidStatus):
                await devices(user, origin=origin)


async def test_token_expiring_closes_the_live_socket(devices, user):
    # given a socket opened with a token that expires in a moment
    pair = await sync_to_async(tokens_issue)(user=user)
    client = await devices(user, token=_short_lived_token(user, _family_of(pair.access_token), 1.5))

    # when it expires, then the server closes the live socket with token_expired, and it goes offline
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.TOKEN_EXPIRED
    await asyncio.sleep(0.2)
    assert not (await device_row(user, client.device_id)).is_online


async def test_session_revoked_while_connected_closes_the_socket(devices, user, settings):
    # given a live socket and a short re-check interval
    settings.DEVICE_PRESENCE_FLUSH_INTERVAL = 0.3
    pair = await sync_to_async(tokens_issue)(user=user)
    client = await devices(user, token=pair.access_token)

    # when the session is logged out
    await sync_to_async(tokens_revoke)(user=user, refresh_token=pair.refresh_token)

    # then
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.SESSION_REVOKED


async def test_user_deactivated_while_connected_closes_the_socket(devices, user):
    # given a live socket (the periodic re-check is long: the deactivation itself must reach it)
    client = await devices(user)

    # when staff deactivate the account
    user.is_active = False
    await sync_to_async(user.save)()

    # then
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.USER_DEACTIVATED


async def test_auth_frame_with_a_fresh_token_keeps_the_socket_past_the_old_expiry(devices, user):
    # given a socket whose token expires in a moment
    pair = await sync_to_async(tokens_issue)(user=user)
    family = _family_of(pair.access_token)
    # (3 s rather than less: a loaded CI machine may take a second to connect and say hello)
    client = await devices(user, token=_short_lived_token(user, family, 3.0))

    # when the client presents a fresh token (and, separately, someone else's)
    await client.send({"type": "auth", "token": _short_lived_token(user, family, 600)})
    other = await asyncio.to_thread(lambda: tokens_issue(user=type(user).objects.create_user(email="eve@example.com")))
    await client.send({"type": "auth", "token": other.access_token})
    refused = await client.next_frame()
    await asyncio.sleep(3.5)

    # then the foreign token is refused and the socket outlives the first token
    assert refused["code"] == "token_invalid"
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    assert client.close_code is None


def _token_expiring_at(user, family_id: str, exp: int) -> str:
    token = AccessToken.for_user(user)
    token[FAMILY_CLAIM] = family_id
    token["exp"] = exp
    return str(token)


@pytest.mark.parametrize("seconds_ago", [30, 0], ids=["long-expired", "expired-this-second"])
async def test_an_auth_frame_with_an_expired_token_is_refused_and_the_socket_keeps_its_token(
    devices, user, seconds_ago
):
    # given a socket on a token valid for ten minutes
    pair = await sync_to_async(tokens_issue)(user=user)
    family = _family_of(pair.access_token)
    client = await devices(user, token=_short_lived_token(user, family, 600))

    # when the client presents a token of the same user and session that has expired
    expired = _token_expiring_at(user, family, int(time.time()) - seconds_ago)
    await client.send({"type": "auth", "token": expired})

    # then it is refused with an error frame (not adopted: its expiry would close the socket at once)
    refused = await client.next_frame()
    assert refused["type"] == "error"
    assert refused["code"] == "token_invalid"
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    assert client.close_code is None


@pytest.mark.parametrize("seconds_ago", [30, 0], ids=["long-expired", "expired-this-second"])
async def test_a_handshake_with_an_expired_token_is_refused_before_the_consumer(user, seconds_ago):
    # given a token whose expiry is now (to the second) or past, and the real socket middleware in
    # front of an inner application that records what it was handed
    pair = await sync_to_async(tokens_issue)(user=user)
    token = _token_expiring_at(user, _family_of(pair.access_token), int(time.time()) - seconds_ago)
    handed: dict = {}

    async def inner(scope, receive, send):
        handed.update(scope)

    # when the handshake arrives
    scope = {
        "type": "websocket",
        "path": "/api/v1/ws/device",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "query_string": b"",
    }
    await ApplicationCommunicator(DeviceSocketAuthMiddleware(inner), scope).wait(timeout=10)

    # then no user reaches the consumer, only the reason (the consumer's own expiry timer closes
    # with the same code, so the socket's close code alone cannot tell refused from accepted)
    assert handed["user"] is None
    assert handed["device_auth_failure"] == DeviceCloseCode.TOKEN_EXPIRED
    assert "device_token_exp" not in handed
