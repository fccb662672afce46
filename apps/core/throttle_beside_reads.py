"""A read-only API view's throttle hit travels to Redis while the view reads the database.

DRF asks its throttles before the view runs, each answer one Redis round trip that the request's
thread waits for; under load that wait, and the handover of the interpreter lock it causes, cost about
as much CPU as a database query. With ``ThrottleBesideReadsMixin`` a throttle that can split its hit
(``hit_sent`` / ``hit_allowed``, as ``TierRateThrottle`` does) sends it before the view and reads
the answer after the view: the reply has arrived while the view's query ran.

The answers are the ones DRF gives: every request is counted once, and a request over its budget is
a 429 with its Retry-After, also when the view failed (the 429 wins, as when DRF refused it before
the view). Only for GET-like views that change nothing: a throttled request's view has run (its
answer is thrown away), so a refused request costs the database its reads and the process the
view's work (reads, decryption, rendering; not measured): only for cheap reads of the database,
not a blob store billed per read. A view's other methods (POST, DELETE) are throttled before they
run, as DRF does.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request


class ThrottleBesideReadsMixin:
    """For an ``APIView``: on GET, HEAD and OPTIONS, throttles that can split their hit answer after the view."""

    _sent_throttles: list[Any] = []

    def check_throttles(self, request: Request) -> None:
        if request.method not in SAFE_METHODS:
            super().check_throttles(request)  # type: ignore[misc]
            return
        sent: list[Any] = []
        durations: list[float | None] = []
        for throttle in self.get_throttles():  # type: ignore[attr-defined]
            hit_sent = getattr(throttle, "hit_sent", None)
            if hit_sent is not None and hit_sent(request, self):
                sent.append(throttle)
            elif not throttle.allow_request(request, self):
                durations.append(throttle.wait())
        self._sent_throttles = sent
        if durations:
            self._throttles_settled(durations)

    def _throttles_settled(self, durations: list[float | None] | None = None) -> None:
        """Read the sent hits' answers; ``Throttled`` (DRF's, with the longest wait) if any refused."""
        sent, self._sent_throttles = self._sent_throttles, []
        durations = list(durations or [])
        try:
            for throttle in sent:
                if not throttle.hit_allowed():
                    durations.append(throttle.wait())
        finally:
            for throttle in sent:
                throttle.hit_abandoned()  # those not read when one failed: their connections go back
        if durations:
            known = [duration for duration in durations if duration is not None]
            self.throttled(self.request, max(known, default=None))  # type: ignore[attr-defined]

    def handle_exception(self, exc: Exception) -> Any:
        if self._sent_throttles:
            try:
                self._throttles_settled()
            except Throttled as throttled:
                exc = throttled  # refused before the view in DRF: the 429 is the answer
        return super().handle_exception(exc)  # type: ignore[misc]

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if self._sent_throttles:
            try:
                self._throttles_settled()
            except Throttled as throttled:
                response = self.handle_exception(throttled)
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
