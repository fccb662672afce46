"""A read-only API view's throttle hit travels to Redis while the request's session is asked about.

DRF asks its throttles after authentication, each answer one Redis round trip that the request's
thread waits for; under load that wait, and the handover of the interpreter lock it causes, cost about
as much CPU as a database query. The hit's key needs only the user id, which the access token names
before its session is asked about: with ``ThrottleBesideAuthMixin`` a throttle that can split its hit
(``hit_sent_for`` / ``hit_allowed`` / ``hit_refunded``, as ``TierRateThrottle`` does) sends it before
the session query and reads the answer after it, where DRF asks: the reply has arrived while the query
ran. The order
stays DRF's (authentication, permissions, throttles, then the view), so a request over its budget is
refused before its view runs: a flood of reads costs the server no page queries, decryption or
rendering.

The answers are the ones DRF gives: every request that reaches its throttles is counted once, and a
request over its budget is a 429 with its Retry-After (also where the view would have answered 404).
A request that ends before DRF would have asked its throttles (a valid token whose session was
revoked: 401; a permission refusing: 403; the session query failing) takes its sent hit back
(``hit_refunded``), so, as with DRF, it spends nothing of the user's budget; the hit of a 429 stays.
Two leftovers: between the hit and its refund (one more round trip, on refused requests only) the
counter holds it, so a flood of refused requests can make a concurrent good one of the same user a 429
near the budget's end; and a refund Redis refuses is logged and the hit stays counted. Only someone
holding that user's signed token can do either. No bearer token, an invalid one, another
authenticator, a cache that is not Redis, or a Redis unreachable when the hit is sent: exactly DRF's
path. Only for GET, HEAD and OPTIONS; a view's other methods (POST, DELETE) are throttled as DRF
throttles them.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request


class ThrottleBesideAuthMixin:
    """For an ``APIView``: on GET, HEAD and OPTIONS, a split throttle hit is sent before the session query."""

    _throttles_sent: tuple[list[Any], list[Any]] | None = None  # (every throttle, those whose hit is sent)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            super().initial(request, *args, **kwargs)  # type: ignore[misc]
        except BaseException:
            # A 401, a 403, a failed read: DRF would not have counted the hits not read yet.
            self._hits_refunded()
            raise

    def perform_authentication(self, request: Request) -> None:
        if request.method in SAFE_METHODS:
            self._hits_sent(request)
        super().perform_authentication(request)  # type: ignore[misc]

    def _hits_sent(self, request: Request) -> None:
        authenticators = request.authenticators
        # DRF asks the authenticators in order: only the first one's user is known beforehand
        # (``AccessTokenAuthentication.claimed_user_id``).
        claimed_user_id = getattr(authenticators[0], "claimed_user_id", None) if authenticators else None
        user_id = claimed_user_id(request) if claimed_user_id is not None else None
        if user_id is None:
            return
        throttles = self.get_throttles()  # type: ignore[attr-defined]
        sent: list[Any] = []
        self._throttles_sent = (throttles, sent)  # before sending: one failing still frees the others'
        for throttle in throttles:
            hit_sent_for = getattr(throttle, "hit_sent_for", None)
            if hit_sent_for is not None and hit_sent_for(user_id):
                sent.append(throttle)
        if not sent:
            self._throttles_sent = None  # nothing travels: DRF's path

    def check_throttles(self, request: Request) -> None:
        if self._throttles_sent is None:
            super().check_throttles(request)  # type: ignore[misc]
            return
        throttles, sent = self._throttles_sent
        durations: list[float | None] = []
        for throttle in throttles:
            allowed = throttle.hit_allowed(request, self) if throttle in sent else throttle.allow_request(request, self)
            if not allowed:
                durations.append(throttle.wait())
        self._throttles_sent = None
        if durations:
            known = [duration for duration in durations if duration is not None]
            self.throttled(request, max(known, default=None))  # type: ignore[attr-defined]

    def _hits_refunded(self) -> None:
        if self._throttles_sent is not None:
            _, sent = self._throttles_sent
            self._throttles_sent = None
            for throttle in sent:
                throttle.hit_refunded()  # idempotent: a hit already read (asked, as DRF asks) stays counted
