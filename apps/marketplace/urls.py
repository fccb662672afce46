"""Marketplace routes under /api/v1/plugins (developer routes first: ``developer`` is a reserved id)."""

from django.urls import path

from .apis import (
    DeveloperConnectApi,
    DeveloperEarningsApi,
    DeveloperPackageUploadApi,
    DeveloperPluginDetailApi,
    DeveloperPluginListApi,
    DeveloperVersionCreateApi,
    DeveloperVersionSubmitApi,
    PluginDetailApi,
    PluginDownloadUrlApi,
    PluginInstallApi,
    PluginListApi,
    PluginPackageDownloadApi,
    PluginRatingApi,
)

urlpatterns = [
    path("plugins/developer/plugins", DeveloperPluginListApi.as_view(), name="plugins-developer-plugins"),
    path("plugins/developer/plugins/<str:slug>", DeveloperPluginDetailApi.as_view(), name="plugins-developer-plugin"),
    path(
        "plugins/developer/plugins/<str:slug>/versions",
        DeveloperVersionCreateApi.as_view(),
        name="plugins-developer-versions",
    ),
    path(
        "plugins/developer/plugins/<str:slug>/versions/<str:version>/package",
        DeveloperPackageUploadApi.as_view(),
        name="plugins-developer-package",
    ),
    path(
        "plugins/developer/plugins/<str:slug>/versions/<str:version>/submit",
        DeveloperVersionSubmitApi.as_view(),
        name="plugins-developer-submit",
    ),
    path("plugins/developer/connect", DeveloperConnectApi.as_view(), name="plugins-developer-connect"),
    path("plugins/developer/earnings", DeveloperEarningsApi.as_view(), name="plugins-developer-earnings"),
    path("plugins/downloads/<str:token>", PluginPackageDownloadApi.as_view(), name="marketplace-download"),
    path("plugins", PluginListApi.as_view(), name="plugins"),
    path("plugins/<str:slug>", PluginDetailApi.as_view(), name="plugin"),
    path("plugins/<str:slug>/install", PluginInstallApi.as_view(), name="plugin-install"),
    path("plugins/<str:slug>/download", PluginDownloadUrlApi.as_view(), name="plugin-download"),
    path("plugins/<str:slug>/ratings", PluginRatingApi.as_view(), name="plugin-ratings"),
]
