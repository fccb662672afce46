"""Derive per-purpose Redis URLs (cache, channel layer, broker) from the one REDIS_URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def redis_url_for(url: str, *, db: int, kombu: bool = False) -> str:
    """Return ``url`` pointing at database ``db``; kombu spells Unix sockets ``redis+socket://``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        if kombu:
            query.pop("db", None)
            query["virtual_host"] = str(db)
            return f"redis+socket://{parts.path}?{urlencode(query)}"
        query["db"] = str(db)
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))
