"""Auth endpoints of the desktop client: register, login, refresh, logout, me."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.loop_views import LoopApiView
from apps.core.rendered_responses import RenderedInViewMixin
from apps.core.schema import ErrorSerializer

from .authentication import AccessTokenAuthentication
from .deletion import account_delete_request
from .email_verification import email_verification_resend
from .models import Tier
from .requests import AuthenticatedRequest
from .selectors import user_email_verified
from .services import user_login, user_register, user_time_zone_set
from .throttles import LoginEmailThrottle, LoginIpThrottle, RegisterThrottle, VerifyEmailResendThrottle
from .time_zones import time_zone_names
from .tokens import FAMILY_CLAIM, TokenPair, tokens_refresh, tokens_revoke


class TokensOutputSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    expires_at = serializers.IntegerField(help_text="Unix time (seconds) at which the access token expires.")


def _tokens(pair: TokenPair, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(TokensOutputSerializer(pair).data, status=status_code)


class CredentialsInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=512, trim_whitespace=False)


class RegisterApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [RegisterThrottle]

    @extend_schema(request=CredentialsInputSerializer, responses={201: TokensOutputSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        serializer = CredentialsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _, pair = user_register(**serializer.validated_data, request=request._request)
        return _tokens(pair, status_code=status.HTTP_201_CREATED)


class LoginApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginIpThrottle, LoginEmailThrottle]

    @extend_schema(
        request=CredentialsInputSerializer,
        responses={
            200: TokensOutputSerializer,
            401: OpenApiResponse(ErrorSerializer, "Wrong credentials."),
            403: OpenApiResponse(ErrorSerializer, "The account's team signs in by SSO only (sso_required, sso_url)."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = CredentialsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _, pair = user_login(**serializer.validated_data, request=request._request)
        return _tokens(pair)


class RefreshInputSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=256)


class RefreshApi(APIView):
    # Authentication is optional here: when a bearer is sent it must own the refresh token.
    authentication_classes = [AccessTokenAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(
        request=RefreshInputSerializer,
        responses={200: TokensOutputSerializer, 401: OpenApiResponse(ErrorSerializer, "Invalid or reused token.")},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        acting_user = request.user if request.user.is_authenticated else None
        return _tokens(
            tokens_refresh(refresh_token=serializer.validated_data["refresh_token"], acting_user=acting_user)
        )


class LogoutInputSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=256, required=False)


class LogoutApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=LogoutInputSerializer, responses={204: None})
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = LogoutInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refresh_token = serializer.validated_data.get("refresh_token")
        if refresh_token is not None:
            tokens_revoke(user=request.user, refresh_token=refresh_token)
        else:
            tokens_revoke(user=request.user, family_id=request.auth.get(FAMILY_CLAIM))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_field({"type": "string", "enum": time_zone_names()})
class TimeZoneField(serializers.CharField):
    """A name the service accepts (it checks again, and names the field when it refuses)."""


class MeOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    tier = serializers.ChoiceField(choices=Tier.choices)
    email_verified = serializers.BooleanField()
    time_zone = serializers.CharField(help_text="IANA time zone; agent schedules run in it.")


class MeApi(RenderedInViewMixin, LoopApiView):
    permission_classes = [IsAuthenticated]
    delete_reads_body = True  # DELETE auth/me takes {password}

    class InputSerializer(serializers.Serializer):
        time_zone = TimeZoneField(max_length=64, help_text="IANA name, e.g. 'Europe/Berlin'.")

    def get_authenticators(self) -> list[BaseAuthentication]:
        # The usual token check, whose session query also says whether the address is verified.
        return [AccessTokenAuthentication(with_email_verified=True)]

    @staticmethod
    def _me(user, *, email_verified: bool | None = None) -> Response:
        # Read with the session check when the request was authenticated by it (one round trip).
        if email_verified is None:
            email_verified = getattr(user, "session_email_verified", None)
        return Response(
            {
                "id": str(user.id),
                "email": user.email,
                "tier": user.tier,
                "email_verified": user_email_verified(user=user) if email_verified is None else email_verified,
                "time_zone": user.time_zone,
            }
        )

    @extend_schema(responses=MeOutputSerializer)
    async def get(self, request: AuthenticatedRequest) -> Response:
        # On the loop (apps.core.loop_views): the session query, which also answers whether the
        # address is verified, was awaited there; another authenticator's user is asked in the thread.
        user = request.user
        verified = getattr(user, "session_email_verified", None)
        if verified is None:
            verified = await sync_to_async(user_email_verified)(user=user)
        return self._me(user, email_verified=verified)

    @extend_schema(request=InputSerializer, responses=MeOutputSerializer)
    def patch(self, request: AuthenticatedRequest) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._me(user_time_zone_set(user=request.user, time_zone=serializer.validated_data["time_zone"]))

    class DeleteInputSerializer(serializers.Serializer):
        password = serializers.CharField(trim_whitespace=False, max_length=4096, required=False)
        sso_code = serializers.CharField(
            max_length=256, required=False, help_text="Instead of the password: a fresh SSO sign-in code."
        )

        def validate(self, attrs: dict) -> dict:
            if not attrs.get("password") and not attrs.get("sso_code"):
                raise serializers.ValidationError({"password": ["The password, or an sso_code, is required."]})
            return attrs

    @extend_schema(
        request=DeleteInputSerializer,
        responses={204: None},
        operation_id="auth_me_delete",
        description="Delete the account and everything of it (records, blobs, backups, memory, agents, "
        "grants, devices, sessions; the Stripe subscription is cancelled). The account closes now; the "
        "erasure finishes in the background. Confirmed with the password or, for an account signed in by "
        "SSO, a fresh one-time SSO code (spent). 403 `invalid_credentials`; 409 `account_deletion_blocked` "
        "with `reasons` (e.g. a team owner must hand the team over first).",
    )
    def delete(self, request: AuthenticatedRequest) -> Response:
        serializer = self.DeleteInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        account_delete_request(
            user=request.user, password=data.get("password", ""), sign_in_code=data.get("sso_code", "")
        )
        return Response(status=204)


class VerifyEmailResendApi(APIView):
    """Send the confirmation mail again; the link in it verifies the address."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [VerifyEmailResendThrottle]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "VerifyEmailResend"

        email = serializers.EmailField()
        sent = serializers.BooleanField()

    @extend_schema(request=None, responses={202: OutputSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        address = email_verification_resend(user=request.user, request=request._request)
        return Response(
            self.OutputSerializer({"email": address.email, "sent": True}).data, status=status.HTTP_202_ACCEPTED
        )
