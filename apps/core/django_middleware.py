"""Django's own middleware with their hooks called on the event loop under ASGI.

Django's ``MiddlewareMixin`` is async-capable, but under ASGI it runs every ``process_request`` and
``process_response`` in the request's sync thread (``sync_to_async``): with the seven below that was
thirteen trips to a thread and back per request, ~2.6 ms of a bare request's ~3.5 ms of CPU on the
dev box, before any view ran. Their hooks only read the request and set headers, cookies and lazy
attributes, so here they run on the loop. What can reach the database still goes to the thread: a
session or a message store that was used (saving writes the session row) and, with
``CSRF_USE_SESSIONS``, the CSRF hooks. Under WSGI (the test client, ``manage.py``) nothing changes:
``MiddlewareMixin.__call__`` calls the hooks directly, as before.

``CsrfViewMiddleware.process_view`` (which Django would adapt to the thread when it loads the chain)
runs on the loop for a view exempt from CSRF (DRF's) and for a safe method, where it only reads a
flag and marks the request; an unsafe request to a protected view (a form of the admin or of allauth)
is checked in the thread, since the check reads the form body (``request.POST``).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.checks import CheckMessage, Warning
from django.http import HttpRequest
from django.middleware import clickjacking, common, csrf, security
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string


class HooksOnTheLoop(MiddlewareMixin):
    """``MiddlewareMixin.__acall__`` with the hooks called on the loop, except when the subclass says
    a hook may touch the database for this request (then in the request's thread, as Django does)."""

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return False

    def response_needs_thread(self, request: HttpRequest) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> Any:
        response = None
        if hasattr(self, "process_request"):
            response = await _called(self.process_request, request, in_thread=self.request_needs_thread(request))
        response = response or await self.get_response(request)  # type: ignore[misc]
        if hasattr(self, "process_response"):
            in_thread = self.response_needs_thread(request)
            response = await _called(self.process_response, request, response, in_thread=in_thread)
        return response


async def _called(hook: Any, *args: Any, in_thread: bool) -> Any:
    if in_thread:
        return await sync_to_async(hook, thread_sensitive=True)(*args)
    return hook(*args)


class SecurityMiddleware(HooksOnTheLoop, security.SecurityMiddleware):
    pass


class CommonMiddleware(HooksOnTheLoop, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(HooksOnTheLoop, auth.AuthenticationMiddleware):
    """Sets ``request.user`` lazily (read in the view's thread, or awaited as ``request.auser``)."""


class XFrameOptionsMiddleware(HooksOnTheLoop, clickjacking.XFrameOptionsMiddleware):
    pass


# The methods CsrfViewMiddleware.process_view accepts without reading the request's body.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class CsrfViewMiddleware(HooksOnTheLoop, csrf.CsrfViewMiddleware):
    """The secret and its cookie on the loop; in the session (``CSRF_USE_SESSIONS``) in the thread.
    Under ASGI the view check is a coroutine, so Django calls it on the loop as it is."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(self.get_response):  # in an ASGI chain (under WSGI the sync check stays)
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return settings.CSRF_USE_SESSIONS

    async def _aprocess_view(self, request: HttpRequest, callback: Any, args: Any, kwargs: Any) -> Any:
        check = super().process_view
        if getattr(callback, "csrf_exempt", False) or request.method in _SAFE_METHODS:
            return check(request, callback, args, kwargs)
        return await sync_to_async(check, thread_sensitive=True)(request, callback, args, kwargs)

    def response_needs_thread(self, request: HttpRequest) -> bool:
        return settings.CSRF_USE_SESSIONS


class SessionMiddleware(HooksOnTheLoop, sessions.SessionMiddleware):
    """The session store is made lazily on the loop; a session the request read or changed is saved
    (or its cookie refreshed) in the thread, since saving writes its row."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        session = request.session
        return session.accessed or session.modified or settings.SESSION_SAVE_EVERY_REQUEST


class MessageMiddleware(HooksOnTheLoop, messages.MessageMiddleware):
    """Messages a request read or added are stored (in a cookie or the session) in the thread."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


# Django's deploy checks look for these middleware by their dotted path, so they would report the
# subclasses above as missing; settings silence those three and this check asks the same of the chain
# by class: a subclass of each is in MIDDLEWARE.
_REQUIRED = {
    "security.W001": (security.SecurityMiddleware, "HSTS, nosniff, the referrer policy and the SSL redirect"),
    "security.W002": (clickjacking.XFrameOptionsMiddleware, "the X-Frame-Options header"),
    "security.W003": (csrf.CsrfViewMiddleware, "CSRF protection"),
}


def protections_in_chain_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    chain = [import_string(dotted) for dotted in settings.MIDDLEWARE]
    return [
        Warning(
            f"No subclass of {required.__module__}.{required.__qualname__} is in MIDDLEWARE: {what} is off.",
            id=f"core.{check_id.split('.')[1]}",
        )
        for check_id, (required, what) in _REQUIRED.items()
        if not any(isinstance(middleware, type) and issubclass(middleware, required) for middleware in chain)
    ]
