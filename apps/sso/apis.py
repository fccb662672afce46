"""SSO endpoints of the desktop client: the providers to offer, and the code → JWT exchange."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.apis import TokensOutputSerializer
from apps.accounts.throttles import LoginIpThrottle

from .selectors import sso_providers_list
from .services import sso_code_exchange
from .views import STATE_PATTERN


class SsoProvidersApi(APIView):
    """Identity providers this server offers, each with the browser URL that starts its login."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SsoProviders"

        class ProviderSerializer(serializers.Serializer):
            class Meta:
                ref_name = "SsoProvider"

            id = serializers.CharField()
            name = serializers.CharField()
            login_url = serializers.URLField()

        providers = ProviderSerializer(many=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, description="Echoed to the app's redirect (anti-forgery)."),
            OpenApiParameter(
                "email",
                str,
                description="The person's work address: their team's own provider is offered first when "
                "the team proved its domain.",
            ),
        ],
        responses={200: OutputSerializer},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        state = request.query_params.get("state", "")
        if not STATE_PATTERN.fullmatch(state):
            state = ""
        email = request.query_params.get("email", "")[:254].strip().lower()
        providers = sso_providers_list(request=request._request, state=state, email=email)
        return Response(self.OutputSerializer({"providers": [p._asdict() for p in providers]}).data)


class SsoExchangeApi(APIView):
    """Trade the one-time code the browser handed to the app for the app's tokens."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginIpThrottle]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SsoExchangeInput"

        code = serializers.CharField(max_length=128)

    @extend_schema(request=InputSerializer, responses={200: TokensOutputSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = sso_code_exchange(code=serializer.validated_data["code"])
        return Response(TokensOutputSerializer(pair).data)
