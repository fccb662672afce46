"""REST doors of the connectors: connect (authorize + callback), refresh, list, disconnect.

Thin: each view validates its input and calls one service; tokens never appear in a response.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .authorizations import oauth_authorization_complete, oauth_authorization_start
from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .grants import grant_disconnect, grant_refresh
from .models import GrantStatus, OAuthGrant
from .provider_config import provider_parse
from .selectors import grant_get, grant_list

PROVIDER_PARAMETER = OpenApiParameter(
    "provider", OpenApiTypes.STR, OpenApiParameter.PATH, enum=["gmail", "outlook", "teams"]
)


def _connected_grant(*, user: Any, provider: str) -> OAuthGrant:
    grant = grant_get(user_id=user.id, provider=provider_parse(provider))
    if grant is None or grant.status == GrantStatus.REVOKED:
        raise ConnectorError(ConnectorErrorCode.GRANT_MISSING, f"{provider} is not connected.")
    return grant


class OAuthAuthorizeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        authorization_url = serializers.URLField(help_text="Open it in the browser; the provider redirects back.")

    @extend_schema(parameters=[PROVIDER_PARAMETER], responses={200: OutputSerializer})
    def get(self, request: Request, provider: str) -> Response:
        url = oauth_authorization_start(user=request.user, provider=provider)
        return Response(self.OutputSerializer({"authorization_url": url}).data)


class OAuthCallbackApi(APIView):
    """The provider's browser redirect: no JWT, the ``state`` names the user and provider."""

    calls_upstream = True  # its outside provider can fail: a declared 502

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        state = serializers.CharField(required=False, allow_blank=True, max_length=256, default="")
        code = serializers.CharField(required=False, allow_blank=True, max_length=4096, default="")
        error = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        error_description = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        provider = serializers.CharField()
        grant_id = serializers.UUIDField()
        status = serializers.CharField()
        encrypted_token = serializers.CharField(
            help_text="Kept for clients of the earlier backend: an opaque reference (the grant id), never a token."
        )

    @extend_schema(parameters=[PROVIDER_PARAMETER, InputSerializer], responses={200: OutputSerializer}, auth=[])
    def get(self, request: Request, provider: str) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user = request.user if request.user and request.user.is_authenticated else None
        grant = oauth_authorization_complete(provider=provider, request_user=user, **params.validated_data)
        data = {
            "ok": True,
            "provider": grant.provider,
            "grant_id": grant.id,
            "status": grant.status,
            "encrypted_token": str(grant.id),
        }
        return Response(self.OutputSerializer(data).data)


class OAuthRefreshApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        provider = serializers.CharField()
        status = serializers.CharField()
        access_expires_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(parameters=[PROVIDER_PARAMETER], request=None, responses={200: OutputSerializer})
    def post(self, request: Request, provider: str) -> Response:
        grant = grant_refresh(grant=_connected_grant(user=request.user, provider=provider))
        data = {
            "ok": True,
            "provider": grant.provider,
            "status": grant.status,
            "access_expires_at": grant.access_expires_at,
        }
        return Response(self.OutputSerializer(data).data)


class GrantOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    provider = serializers.CharField()
    status = serializers.ChoiceField(choices=GrantStatus.choices)
    status_reason = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    access_expires_at = serializers.DateTimeField(allow_null=True)
    last_refreshed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class OAuthGrantListApi(APIView):
    @extend_schema(responses={200: GrantOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(GrantOutputSerializer(grant_list(user=request.user), many=True).data)


class OAuthDisconnectApi(APIView):
    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        provider = serializers.CharField()
        status = serializers.CharField()

    @extend_schema(parameters=[PROVIDER_PARAMETER], responses={200: OutputSerializer})
    def delete(self, request: Request, provider: str) -> Response:
        grant = grant_disconnect(grant=_connected_grant(user=request.user, provider=provider), actor=request.user)
        return Response(self.OutputSerializer({"ok": True, "provider": grant.provider, "status": grant.status}).data)
