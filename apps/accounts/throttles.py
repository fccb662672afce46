"""Throttles for the unauthenticated doors (login per address and per account, registration)."""

from __future__ import annotations

import hashlib

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView


class LoginIpThrottle(SimpleRateThrottle):
    """Login attempts from one address."""

    scope = "login"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": "login-ip", "ident": self.get_ident(request)}


class LoginEmailThrottle(SimpleRateThrottle):
    """Login attempts against one account, whatever the address."""

    scope = "login"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        email = request.data.get("email") if isinstance(request.data, dict) else None
        if not isinstance(email, str) or not email:
            return None
        # Hashed: the key is bounded and any text (even an unpaired surrogate) makes a valid Redis key.
        normalized = email.strip().lower()[:254].encode("utf-8", "surrogatepass")
        return self.cache_format % {"scope": "login-email", "ident": hashlib.sha256(normalized).hexdigest()}


class RegisterThrottle(SimpleRateThrottle):
    """Registrations from one address."""

    scope = "register"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": "register", "ident": self.get_ident(request)}


class VerifyEmailResendThrottle(SimpleRateThrottle):
    """Confirmation mails asked for by one account."""

    scope = "verify_email"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": "verify-email", "ident": request.user.pk}
