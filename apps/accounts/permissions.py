"""DRF permissions of the accounts domain."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .email_verification import require_verified_email


class RequiresVerifiedEmail(BasePermission):
    """Allow only users whose e-mail address is verified; others get 403 ``email_not_verified``."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 for the anonymous
        require_verified_email(user=request.user)
        return True
