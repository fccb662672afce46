"""Connector routes under /api/v1/oauth/."""

from django.urls import path

from .apis import OAuthAuthorizeApi, OAuthCallbackApi, OAuthDisconnectApi, OAuthGrantListApi, OAuthRefreshApi

urlpatterns = [
    path("oauth/grants", OAuthGrantListApi.as_view(), name="oauth-grants"),
    path("oauth/<str:provider>/authorize", OAuthAuthorizeApi.as_view(), name="oauth-authorize"),
    path("oauth/<str:provider>/callback", OAuthCallbackApi.as_view(), name="oauth-callback"),
    path("oauth/<str:provider>/refresh", OAuthRefreshApi.as_view(), name="oauth-refresh"),
    path("oauth/<str:provider>", OAuthDisconnectApi.as_view(), name="oauth-disconnect"),
]
