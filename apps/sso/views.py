"""The browser end of single sign-on: once allauth has signed the person in, hand a one-time code
to the desktop app through its redirect URL, or show why not (and tell the app the error)."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.errors import ApplicationError

from .error_codes import SsoErrorCode
from .services import sso_code_issue
from .team_providers import SESSION_PROVIDER_KEY

# The desktop app's opaque anti-forgery value, echoed back untouched (RFC 6749's "state" alphabet).
STATE_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,256}")


class ClientRedirect(HttpResponseRedirect):
    """A redirect to the desktop app's own URL scheme (``adiuva://``), which Django refuses by default."""

    def __init__(self, redirect_to: str) -> None:
        self.allowed_schemes = [urlsplit(redirect_to).scheme, "http", "https"]
        super().__init__(redirect_to)


def client_redirect_url(**params: str) -> str:
    base = settings.SSO_CLIENT_REDIRECT_URL
    query = urlencode({key: value for key, value in params.items() if value})
    return f"{base}{'&' if '?' in base else '?'}{query}"


def _refusal(request: HttpRequest, error: ApplicationError, *, state: str) -> HttpResponse:
    client_url = client_redirect_url(error=error.code, error_description=error.message, state=state)
    context = {"code": error.code, "message": error.message, "client_url": client_url}
    return render(request, "sso/refused.html", context, status=error.status)


def refusal_page(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    """The refusal page outside the code step (e.g. a sign-up stopped before the account is made)."""
    state = request.session.get("sso_state", "") if hasattr(request, "session") else ""
    return _refusal(request, error, state=state if STATE_PATTERN.fullmatch(state or "") else "")


@never_cache
@require_GET
def sso_complete(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    if not STATE_PATTERN.fullmatch(state):
        state = ""
    if not request.user.is_authenticated:
        error = ApplicationError(
            SsoErrorCode.SSO_NOT_LOGGED_IN, "Sign in with your organisation's account first.", status=401
        )
        return _refusal(request, error, state=state)
    try:
        code = sso_code_issue(user=request.user, provider_id=request.session.get(SESSION_PROVIDER_KEY, ""))
    except ApplicationError as error:  # not the team tier, or the address is not verified
        return _refusal(request, error, state=state)
    return ClientRedirect(client_redirect_url(code=code, state=state))
