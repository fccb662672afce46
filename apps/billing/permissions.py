"""Tier gates for DRF views: ``RequiresFeature(Feature.PLUGIN_MARKETPLACE)``."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .tiers import Feature, require_feature


def RequiresFeature(feature: Feature | str) -> type[BasePermission]:
    """A permission class admitting users whose tier has ``feature``; others get a 403
    ``feature_not_available`` naming the feature and the tier that unlocks it."""
    required = Feature(feature)  # an unknown name fails here, at import time

    class _RequiresFeature(BasePermission):
        """Allow only users whose tier includes the feature."""

        def has_permission(self, request: Request, view: APIView) -> bool:
            if not (request.user and request.user.is_authenticated):
                return False  # DRF answers 401 for the anonymous
            require_feature(request.user, required)
            return True

    _RequiresFeature.__name__ = _RequiresFeature.__qualname__ = f"RequiresFeature_{required}"
    return _RequiresFeature
