"""Billing endpoints: Checkout, customer portal, subscription state and cancel, Stripe webhooks,
the caller's model-call usage."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.accounts.permissions import RequiresVerifiedEmail
from apps.accounts.requests import AuthenticatedRequest
from apps.core.schema import ErrorSerializer

from . import tiers
from .selectors import (
    entitlement_for_user,
    payment_failures_open,
    subscription_current_for_user,
    subscription_period_end,
    subscription_tier,
)
from .subscriptions import checkout_session_create, portal_session_create, subscription_cancel
from .usage_report import llm_usage_report, period_parse
from .webhooks import webhook_receive


class CheckoutApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502
    # Paying needs an address we know belongs to the payer.
    permission_classes = [IsAuthenticated, RequiresVerifiedEmail]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingCheckoutInput"

        tier = serializers.ChoiceField(choices=list(tiers.PAID_TIERS))
        seats = serializers.IntegerField(min_value=1, max_value=1000, default=1, help_text="Team plan only.")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingCheckout"

        checkout_url = serializers.URLField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            409: OpenApiResponse(ErrorSerializer, "`already_subscribed`, or fewer seats than the team uses."),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        url = checkout_session_create(user=request.user, **serializer.validated_data)
        return Response(self.OutputSerializer({"checkout_url": url}).data)


class PortalApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingPortal"

        portal_url = serializers.URLField()

    @extend_schema(
        request=None,
        responses={
            200: OutputSerializer,
            409: OpenApiResponse(ErrorSerializer, "No billing account yet (no_customer)."),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        return Response(self.OutputSerializer({"portal_url": portal_session_create(user=request.user)}).data)


class SubscriptionOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "BillingSubscription"

    class PlanSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingPlan"

        id = serializers.CharField(help_text="The Stripe subscription id.")
        tier = serializers.CharField()
        status = serializers.CharField()
        seats = serializers.IntegerField()
        cancel_at_period_end = serializers.BooleanField()
        current_period_end = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField(allow_null=True)

    class PaymentFailureSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingPaymentFailure"

        invoice_id = serializers.CharField()
        amount_due = serializers.IntegerField(help_text="In cents.")
        currency = serializers.CharField()
        attempt_count = serializers.IntegerField()
        next_payment_attempt = serializers.DateTimeField(allow_null=True)
        hosted_invoice_url = serializers.CharField()
        failed_at = serializers.DateTimeField(source="created_at")

    tier = serializers.CharField()
    seats = serializers.IntegerField()
    subscription = PlanSerializer(allow_null=True)
    payment_failed = serializers.BooleanField(help_text="An invoice payment failed and is not settled yet.")
    payment_failures = PaymentFailureSerializer(many=True)


def _subscription_state(user: User) -> dict:
    user.refresh_from_db(fields=["tier"])
    entitlement = entitlement_for_user(user=user)
    subscription = subscription_current_for_user(user=user)
    plan = None
    if subscription is not None:
        tier, seats = subscription_tier(subscription)
        plan = {
            "id": subscription.id,
            "tier": tier,
            "status": subscription.status or "",
            "seats": seats,
            "cancel_at_period_end": bool(subscription.cancel_at_period_end),
            "current_period_end": subscription_period_end(subscription),
            "created_at": subscription.created,
        }
    failures = list(payment_failures_open(user=user))
    return {
        "tier": user.tier,
        "seats": entitlement.seats if user.tier in tiers.PER_SEAT_TIERS else 1,
        "subscription": plan,
        "payment_failed": bool(failures),
        "payment_failures": failures,
    }


class SubscriptionApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502

    class CancelOutputSerializer(SubscriptionOutputSerializer):
        class Meta:
            ref_name = "BillingSubscriptionCancel"

        ok = serializers.BooleanField()

    @extend_schema(responses={200: SubscriptionOutputSerializer})
    def get(self, request: AuthenticatedRequest) -> Response:
        """The current plan as mirrored from Stripe (no call to Stripe)."""
        return Response(SubscriptionOutputSerializer(_subscription_state(request.user)).data)

    @extend_schema(responses={200: CancelOutputSerializer})
    def delete(self, request: AuthenticatedRequest) -> Response:
        """Cancel at the end of the paid period; the tier stays until then."""
        subscription_cancel(user=request.user)
        return Response(self.CancelOutputSerializer({"ok": True, **_subscription_state(request.user)}).data)


class WebhookApi(APIView):
    """Stripe webhooks, signature-verified, stored and processed once by dj-stripe."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    parser_classes: list = []  # dj-stripe reads the raw body; the signature covers its exact bytes

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingWebhookAck"

        ok = serializers.BooleanField()

    @extend_schema(
        operation_id="billing_webhook",
        request=None,
        responses={200: OutputSerializer, 400: OpenApiResponse(description="Missing or bad signature.")},
        auth=[],
    )
    def post(self, request: Request, uuid: uuid.UUID | None = None) -> Response:
        webhook_receive(request=request._request, endpoint_uuid=uuid)
        return Response({"ok": True})


class WebhookByEndpointApi(WebhookApi):
    """dj-stripe's per-endpoint webhook URL (``…/webhook/<uuid>/``): only that endpoint's secret counts."""

    @extend_schema(
        operation_id="billing_webhook_by_endpoint",
        request=None,
        responses={200: WebhookApi.OutputSerializer, 400: OpenApiResponse(description="Missing or bad signature.")},
        auth=[],
    )
    def post(self, request: Request, uuid: uuid.UUID | None = None) -> Response:
        return super().post(request, uuid=uuid)


class _TokensSerializer(serializers.Serializer):
    class Meta:
        ref_name = "LlmTokens"

    prompt = serializers.IntegerField()
    completion = serializers.IntegerField()
    cached = serializers.IntegerField(help_text="Part of prompt: tokens the provider served from its cache.")
    total = serializers.IntegerField(help_text="prompt + completion: what the budget counts.")


class _DayTokensSerializer(_TokensSerializer):
    class Meta:
        ref_name = "LlmDayTokens"

    day = serializers.DateField()


class UsageApi(APIView):
    """The caller's model-call tokens in a month (``?period=YYYY-MM``, default this month)."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BillingUsage"

        period = serializers.CharField(help_text="YYYY-MM (calendar month, UTC).")
        budget = serializers.IntegerField(allow_null=True, help_text="Tokens per month; null: unlimited.")
        used = _TokensSerializer()
        remaining = serializers.IntegerField(allow_null=True)
        resets_at = serializers.DateTimeField()
        by_purpose = serializers.DictField(child=_TokensSerializer())
        by_day = _DayTokensSerializer(many=True)

    @extend_schema(
        parameters=[OpenApiParameter("period", str, description="YYYY-MM; default: the current month.")],
        responses={200: OutputSerializer, 400: OpenApiResponse(ErrorSerializer, "Not a YYYY-MM month.")},
    )
    def get(self, request: Request) -> Response:
        period = period_parse(request.query_params.get("period"))
        return Response(self.OutputSerializer(llm_usage_report(user=request.user, period=period)).data)
