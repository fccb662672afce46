"""Billing routes under /api/v1/billing/, including dj-stripe's per-endpoint webhook URL."""

from django.urls import include, path

from .apis import CheckoutApi, PortalApi, SubscriptionApi, UsageApi, WebhookApi, WebhookByEndpointApi

# dj-stripe's admin reverses "djstripe:djstripe_webhook_by_uuid" when it registers endpoints;
# it resolves to our view, which verifies the signature before dj-stripe stores anything.
djstripe_patterns = (
    [path("webhook/<uuid:uuid>/", WebhookByEndpointApi.as_view(), name="djstripe_webhook_by_uuid")],
    "djstripe",
)

urlpatterns = [
    path("checkout", CheckoutApi.as_view(), name="billing-checkout"),
    path("portal", PortalApi.as_view(), name="billing-portal"),
    path("subscription", SubscriptionApi.as_view(), name="billing-subscription"),
    path("usage", UsageApi.as_view(), name="billing-usage"),
    path("webhook", WebhookApi.as_view(), name="billing-webhook"),
    path("", include(djstripe_patterns, namespace="djstripe")),
]
