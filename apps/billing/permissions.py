"""Tier gates for DRF views: ``RequiresFeature("plugin_marketplace")``."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .tiers import FEATURES, require_feature


def RequiresFeature(feature: str) -> type[BasePermission]:
    """A permission class admitting users whose tier has ``feature``; others get a 403
    ``feature_not_available`` naming the feature and the tier that unlocks it."""
    if not any(feature in matrix for matrix in FEATURES.values()):
        raise ValueError(f"unknown feature {feature!r}")

    class _RequiresFeature(BasePermission):
        """Allow only users whose tier includes the feature."""

        def has_permission(self, request: Request, view: APIView) -> bool:
            if not (request.user and request.user.is_authenticated):
                return False  # DRF answers 401 for the anonymous
            require_feature(request.user, feature)
            return True

    _RequiresFeature.__name__ = _RequiresFeature.__qualname__ = f"RequiresFeature_{feature}"
    return _RequiresFeature
