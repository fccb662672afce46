"""The guarded HTTP session: only public addresses unless the operator allowed the host, the address
checked at connect time (resolve and pin), redirects checked hop by hop, plain http only to allowed
hosts. Real sockets against a loopback server; DNS answers come from a stub resolver."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest
import requests

from apps.core.guarded_http import HostRefused, address_is_public, host_addresses_checked, session_guard
from apps.core.testing.loopback_http import LoopbackHttpServer


class _Site(LoopbackHttpServer):
    """Answers 200 on /, redirects /away to ``redirect_to``; records every path it served."""

    def __init__(self, redirect_to: str = "") -> None:
        self.paths: list[str] = []
        self.redirect_to = redirect_to
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.paths.append(self.path)
                if self.path == "/away":
                    self.send_response(302)
                    self.send_header("Location", site.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._serve(Handler)

    @property
    def port(self) -> int:
        return int(self.server.socket.getsockname()[1])


@pytest.fixture
def site():
    server = _Site().start()
    yield server
    server.stop()


def _stub(answers: dict[str, list[str]]):
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.251",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "not-an-address",
    ],
)
def test_internal_addresses_are_not_public(address):
    assert address_is_public(address) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_routable_addresses_are_public(address):
    assert address_is_public(address) is True


@pytest.mark.parametrize("internal", ["127.0.0.1", "10.0.0.8", "169.254.169.254"])
def test_a_name_resolving_to_an_internal_address_is_refused_before_any_connection(internal):
    # given a name whose DNS answer is internal
    resolve = _stub({"idp.example": [internal]})
    session = session_guard(requests.Session(), allowed_hosts=(), resolve=resolve)

    # when it is fetched, then it is refused
    with pytest.raises(HostRefused, match="not public"):
        session.get("https://idp.example/.well-known/openid-configuration", timeout=5)
    assert resolve.calls == ["idp.example"]


def test_a_name_with_one_internal_address_among_public_ones_is_refused():
    resolve = _stub({"idp.example": ["1.1.1.1", "10.0.0.1"]})
    with pytest.raises(HostRefused):
        host_addresses_checked("idp.example", 443, allowed_hosts=(), resolve=resolve)


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(site):
    # given an allowed name that only the stub resolves (the system's DNS knows nothing of it)
    resolve = _stub({"idp.internal.test": ["127.0.0.1"]})
    session = session_guard(requests.Session(), allowed_hosts=("idp.internal.test",), resolve=resolve)

    # when it is fetched
    response = session.get(f"http://idp.internal.test:{site.port}/", timeout=5)

    # then the socket reached the address the guard resolved, once
    assert response.status_code == 200
    assert site.paths == ["/"]
    assert resolve.calls == ["idp.internal.test"]


def test_a_loopback_literal_is_refused_at_connect_time(site):
    session = session_guard(requests.Session(), allowed_hosts=(), resolve=None)

    with pytest.raises(HostRefused):
        session.get(f"https://127.0.0.1:{site.port}/", timeout=5)
    assert site.paths == []


def test_plain_http_is_refused_to_a_host_the_operator_did_not_allow(site):
    session = session_guard(requests.Session(), allowed_hosts=(), resolve=_stub({"idp.example": ["1.1.1.1"]}))

    with pytest.raises(HostRefused, match="https"):
        session.get(f"http://idp.example:{site.port}/", timeout=5)


def test_a_redirect_to_a_host_that_is_not_allowed_is_refused(site):
    # given an allowed host whose answer redirects to another loopback name that is not allowed
    site.redirect_to = f"http://127.0.0.1:{site.port}/secret"
    session = session_guard(requests.Session(), allowed_hosts=("localhost",), resolve=None)

    # when the allowed host is fetched
    with pytest.raises(HostRefused):
        session.get(f"http://localhost:{site.port}/away", timeout=5)

    # then the redirect's target was never asked
    assert site.paths == ["/away"]


def test_an_allowed_loopback_host_is_reached(site):
    response = session_guard(requests.Session(), allowed_hosts=("LOCALHOST",)).get(
        f"http://localhost:{site.port}/", timeout=5
    )

    assert response.status_code == 200
