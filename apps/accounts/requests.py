"""The requests a view receives once a signed-in user is required: their ``user`` is a User."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework_simplejwt.tokens import Token

from .models import User


class AuthenticatedRequest(Request):
    """Only a type: DRF still hands the view its own Request. ``IsAuthenticated`` (the default
    permission) is what makes ``user`` a User and ``auth`` the validated access token."""

    user: User
    auth: Token


class AuthenticatedHttpRequest(HttpRequest):
    """Only a type, for admin actions: the admin site lets only signed-in staff reach them."""

    user: User
