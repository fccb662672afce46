"""The browser end of an invitation e-mail: sign in (allauth's page), then accept with one click."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from apps.accounts.models import User
from apps.core.errors import ApplicationError

from .invitations import invitation_accept_by_token, invitation_for_token


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def invitation_accept_page(request: HttpRequest) -> HttpResponse:
    token = (request.POST if request.method == "POST" else request.GET).get("token", "")[:200]
    invitation = invitation_for_token(token) if token else None
    context: dict[str, object] = {"invitation": invitation, "token": token, "user": request.user}
    if invitation is None or not invitation.is_pending:
        context["error"] = "This invitation link is not valid any more; ask for a new invitation."
        return render(request, "teams/accept.html", context, status=404)
    if request.method == "GET":
        return render(request, "teams/accept.html", context)
    try:
        membership = invitation_accept_by_token(token=token, user=cast(User, request.user))
    except ApplicationError as error:
        context.update(error=error.message, code=error.code)
        return render(request, "teams/accept.html", context, status=error.status)
    context["joined"] = membership.team
    return render(request, "teams/accept.html", context)
