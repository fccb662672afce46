"""A request's view found by its path once per path, not once per request.

Django's ``URLResolver.resolve`` tries the URL patterns in order, and every include it goes into and out
of without a match raises and catches a ``Resolver404`` and extends its list of patterns tried. An API
path under ``api/v1/`` passes several includes before its own (auth/me ~50-70 µs of server CPU on a slow
box, against a few µs for a pattern at the top), on every request, with the same answer every time.

``resolved`` remembers the ``ResolverMatch`` of the most recent paths (``URL_RESOLVE_CACHE_SIZE``) per
resolver. A match holds the view, its arguments as the path's converters made them (strings, UUIDs,
enums: immutable) and the route, and Django's handler and views only read it: the view gets its own
copy of the keyword arguments. A path that resolves to nothing is not remembered (its 404 is asked
again); an unknown path under ``api/`` resolves to the JSON 404 view and is remembered as any other,
so paths made up by a client can only push the hot ones out of the cache, never grow it. A new
URLconf is a new resolver (``get_resolver`` is cleared with Django's URL caches), whose paths are
resolved afresh.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.urls import ResolverMatch, URLResolver, get_resolver, set_urlconf


def request_resolved(request: Any) -> ResolverMatch:
    """``BaseHandler.resolve_request``: the request's ``ResolverMatch``, set on it; from the cache for a
    request on the default URLconf."""
    if hasattr(request, "urlconf"):  # a middleware's URLconf for this request: Django's own steps
        set_urlconf(request.urlconf)
        match = get_resolver(request.urlconf).resolve(request.path_info)
    else:
        match = resolved(get_resolver(), request.path_info)
    request.resolver_match = match
    return match


def resolved(resolver: URLResolver, path: str) -> ResolverMatch:
    """``resolver.resolve(path)``, remembered for the most recent paths (``Resolver404`` as there)."""
    return _resolved_cache()(resolver, path)


@lru_cache(maxsize=1)
def _resolved_cache() -> Any:
    return lru_cache(maxsize=settings.URL_RESOLVE_CACHE_SIZE)(_resolve)


def _resolve(resolver: URLResolver, path: str) -> ResolverMatch:
    return resolver.resolve(path)


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting in {"ROOT_URLCONF", "URL_RESOLVE_CACHE_SIZE"}:
        _resolved_cache.cache_clear()


setting_changed.connect(_forget, dispatch_uid="core.url_resolution")
