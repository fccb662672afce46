"""API views whose hot reads are answered on the event loop, without a trip to the request's thread.

A sync DRF view runs in the request's thread under ASGI, and everything it waits for (the session
query, the throttle's Redis script, its own page query) waits there. For the reads every client makes
all the time (auth/me, the records list) those trips and waits cost the server more CPU than the reads
themselves. A ``LoopApiView`` handler written ``async def`` is dispatched on the loop, as DRF
dispatches a sync one:

- the same steps in the same order: content negotiation, versioning, authentication (an
  authenticator's ``aauthenticate`` awaited, else its ``authenticate`` in the thread), permissions,
  throttles (a throttle's ``aallow_request`` awaited, else ``allow_request`` in the thread), then the
  handler; every error goes through the view's ``handle_exception`` and the project's exception
  handler, so the answers (401 ``session_revoked``, 429 with Retry-After, 503 when the database is
  down) are the sync view's;
- the view's permissions are checked on the loop, so they must not query the database (the hot views
  ask only ``IsAuthenticated``);
- a handler that stays ``def`` (POST, PATCH, DELETE, a download) is dispatched by DRF in the thread,
  exactly as before.

Its reads are ``CompiledQuery.afirst`` / ``arows``, awaited on the server's loop over the pool of
``apps.core.loop_db``; under the test client (no server loop) they run in the thread, on the test's
connection.
"""

from __future__ import annotations

from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView


class LoopApiView(APIView):
    """An ``APIView`` whose ``async def`` handlers run on the loop (see the module)."""

    # Django's View: as_view() marks the view a coroutine function, so the handler awaits dispatch().
    view_is_async = True  # a classproperty on Django's View

    async def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        method = request.method.lower()
        handler = getattr(self, method, None) if method in self.http_method_names else None
        if handler is None or not iscoroutinefunction(handler):
            return await sync_to_async(super().dispatch)(request, *args, **kwargs)
        self.args = args
        self.kwargs = kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            await self.ainitial(drf_request, *args, **kwargs)
            response = await handler(drf_request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response

    async def ainitial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """``APIView.initial``, its waits awaited."""
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        await self.aperform_authentication(request)
        self.check_permissions(request)
        await self.acheck_throttles(request)

    async def aperform_authentication(self, request: Any) -> None:
        """``Request._authenticate`` (whose private steps it takes): the first authenticator that
        answers sets the user."""
        for authenticator in request.authenticators or ():
            authenticate = getattr(authenticator, "aauthenticate", None) or sync_to_async(authenticator.authenticate)
            try:
                user_auth = await authenticate(request)
            except exceptions.APIException:
                request._not_authenticated()
                raise
            if user_auth is not None:
                request._authenticator = authenticator
                request.user, request.auth = user_auth
                return
        request._not_authenticated()

    async def acheck_throttles(self, request: Request) -> None:
        """``APIView.check_throttles``: every throttle asked; the longest wait of those refusing."""
        waits = []
        for throttle in self.get_throttles():
            allow = getattr(throttle, "aallow_request", None) or sync_to_async(throttle.allow_request)
            if not await allow(request, self):
                waits.append(throttle.wait())
        if waits:
            longest = max((wait for wait in waits if wait is not None), default=None)
            self.throttled(request, longest)  # type: ignore[arg-type]  # DRF takes None: no Retry-After
