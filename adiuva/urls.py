"""Top-level URLs: the REST API under /api/v1/, allauth's account pages, the admin."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core.metrics_view import metrics_view
from apps.core.views import api_not_found
from apps.teams.views import invitation_accept_page

# Django tries the patterns in order, and every pattern of an include mounted at "" is tried one by
# one: the routes every client reads all the time (auth, records, memory) come first. Behind the
# devices' and teams' 13 patterns, resolving memory/associative took ~37 µs against auth/me's ~18 µs.
api_v1: list[URLPattern | URLResolver] = [
    path("", include("apps.core.urls")),
    path("auth/", include("apps.accounts.urls")),
    path("", include("apps.storage.urls")),  # storage/… and backup…
    path("", include("apps.memory.urls")),  # memory/…
    path("auth/sso/", include("apps.sso.urls")),
    path("billing/", include("apps.billing.urls")),
    path("", include("apps.devices.urls")),  # devices…
    path("", include("apps.teams.urls")),  # teams…
    path("", include("apps.assistant.urls")),  # chat, storage/vectors/embed
    path("", include("apps.agents.urls")),  # agents/…
    path("", include("apps.connectors.urls")),  # oauth/…
    path("", include("apps.marketplace.urls")),  # plugins…
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    re_path(r"^api/", api_not_found),  # JSON under DEBUG too (Django's debug 404 is HTML)
    path("metrics", metrics_view, name="metrics"),
    path("accounts/", include("allauth.urls")),
    path("teams/accept", invitation_accept_page, name="teams-accept-page"),
    path("admin/", admin.site.urls),
]

handler404 = "apps.core.views.not_found"
handler500 = "apps.core.views.server_error"
