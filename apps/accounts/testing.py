"""Test helpers of the accounts app: an API client signed in as a user."""

from __future__ import annotations

from rest_framework.test import APIClient

from .models import User
from .tokens import tokens_issue


def client_for(user: User) -> APIClient:
    """An API client sending ``user``'s fresh access token, as the desktop client does."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client
