from django.urls import path

from .apis import LoginApi, LogoutApi, MeApi, RefreshApi, RegisterApi, VerifyEmailResendApi

urlpatterns = [
    path("register", RegisterApi.as_view(), name="auth-register"),
    path("login", LoginApi.as_view(), name="auth-login"),
    path("refresh", RefreshApi.as_view(), name="auth-refresh"),
    path("logout", LogoutApi.as_view(), name="auth-logout"),
    path("me", MeApi.as_view(), name="auth-me"),
    path("verify-email/resend", VerifyEmailResendApi.as_view(), name="auth-verify-email-resend"),
]
