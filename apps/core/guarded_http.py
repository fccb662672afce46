"""Outgoing HTTP to hosts that someone other than the operator chose (a team's identity provider):
only to public addresses, unless the operator allowed the host by name.

The host is resolved once per connection, every address is checked, and the socket connects to a
checked address (resolve and pin), so a name that changes its DNS answer between the check and the
connect cannot reach an internal service. Each hop of a redirect is a new request and checked again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

# Given a host and a port, the IP addresses it resolves to (tests pass a stub).
Resolver = Callable[[str, int], list[str]]


class HostRefused(requests.exceptions.ConnectionError):
    """A request to a host that is not public (and not allowed by the operator), or over plain http."""


class _AddressRefused(Exception):
    # Raised inside urllib3, which wraps every OSError (as requests' errors are) into a retry error;
    # a plain exception passes through untouched and the adapter turns it into HostRefused.
    pass


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_is_public(address: str) -> bool:
    """Whether ``address`` is a globally routable unicast address (an IPv4-mapped IPv6 address is
    judged by the IPv4 address it carries)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    refused = (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )
    return not refused


def host_is_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    """Whether the operator allowed ``host`` (a name or an IP literal, compared case-insensitively)."""
    name = host.strip("[]").rstrip(".").lower()
    return name in {allowed.strip("[]").rstrip(".").lower() for allowed in allowed_hosts if allowed}


def host_is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def host_addresses_checked(
    host: str, port: int, *, allowed_hosts: Collection[str], resolve: Resolver | None = None
) -> list[str]:
    """The addresses to connect to for ``host``; raises :class:`HostRefused` when any of them is not
    public and the operator did not allow the host (``socket.gaierror`` when it does not resolve)."""
    addresses = (resolve or system_resolve)(host.strip("[]"), port)
    if host_is_allowed(host, allowed_hosts):
        return addresses
    internal = [address for address in addresses if not address_is_public(address)]
    if internal or not addresses:
        raise HostRefused(f"{host} resolves to an address that is not public ({', '.join(internal)}).")
    return addresses


class _PinnedConnection(HTTPConnection):
    allowed_hosts: Collection[str] = ()
    resolve: Resolver | None = None

    def _new_conn(self) -> socket.socket:
        try:
            addresses = host_addresses_checked(
                self._dns_host, self.port, allowed_hosts=self.allowed_hosts, resolve=self.resolve
            )
        except HostRefused as exc:
            raise _AddressRefused(str(exc)) from None
        except OSError as exc:  # does not resolve
            raise NewConnectionError(self, f"Failed to resolve {self.host}: {exc}") from exc
        error: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, self.port), self.timeout, self.source_address)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
            except OSError as exc:
                error = exc
                continue
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _PinnedHTTPSConnection(_PinnedConnection, HTTPSConnection):
    pass


class GuardedAdapter(HTTPAdapter):
    """Plain http only to allowed hosts; every connection resolved, checked and pinned."""

    def __init__(self, *, allowed_hosts: Collection[str], resolve: Resolver | None = None, **kwargs: Any) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        guard = {"allowed_hosts": self.allowed_hosts, "resolve": staticmethod(resolve) if resolve else None}
        http_conn = type("GuardedHTTPConnection", (_PinnedConnection,), guard)
        https_conn = type("GuardedHTTPSConnection", (_PinnedHTTPSConnection,), guard)
        self._pool_classes = {
            "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = requests.utils.urlparse(request.url or "")
        if url.scheme != "https" and not host_is_allowed(url.hostname or "", self.allowed_hosts):
            raise HostRefused(f"Only https is allowed to {url.hostname}.", request=request)
        try:
            return super().send(request, *args, **kwargs)
        except _AddressRefused as exc:
            raise HostRefused(str(exc), request=request) from None


def session_guard(
    session: requests.Session, *, allowed_hosts: Collection[str], resolve: Resolver | None = None
) -> requests.Session:
    """``session`` with every http(s) request guarded. Proxy settings from the environment are
    ignored: a proxy would resolve the host itself, out of the guard's sight."""
    adapter = GuardedAdapter(allowed_hosts=allowed_hosts, resolve=resolve)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False
    return session
