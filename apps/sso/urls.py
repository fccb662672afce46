from django.urls import path

from .apis import SsoExchangeApi, SsoProvidersApi
from .views import sso_complete

urlpatterns = [
    path("providers", SsoProvidersApi.as_view(), name="sso-providers"),
    path("exchange", SsoExchangeApi.as_view(), name="sso-exchange"),
    path("complete", sso_complete, name="sso-complete"),  # a browser page (session), not JSON
]
