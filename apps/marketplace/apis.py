"""REST endpoints of the marketplace (thin: selectors read, services write).

Catalog, install, download and ratings are for tiers with the plugin marketplace (power, team);
developer endpoints (submission, Connect onboarding, earnings) for any tier, once the e-mail
address is verified.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import RequiresVerifiedEmail
from apps.accounts.requests import AuthenticatedRequest
from apps.billing.permissions import RequiresFeature
from apps.billing.tiers import Feature
from apps.core.errors import ApplicationError, NotFoundError
from apps.core.pagination import PAGE_MAX, page_parameter, page_slice
from apps.storage.blob_store import blob_open
from apps.storage.responses import BlobFileResponse

from .downloads import download_install_for_token, download_url_for
from .error_codes import MarketplaceErrorCode
from .install_rows import active_install
from .installs import plugin_install, plugin_rate, plugin_uninstall
from .manifest import PluginCategory
from .models import Plugin, PluginInstall, PluginVersion
from .payments import developer_account_sync, developer_onboarding_link
from .selectors import (
    CatalogSort,
    catalog_plugin_get,
    catalog_search,
    developer_earnings,
    developer_plugin_get,
    developer_plugins,
)
from .submissions import plugin_create, plugin_version_create, plugin_version_package_upload, plugin_version_submit

MarketplacePermission = RequiresFeature(Feature.PLUGIN_MARKETPLACE)
# Publishing is open to every tier (developers sell to power and team users; charging them a tier
# to sell would be a second fee), but only from a verified address: plugins, payouts and earnings
# belong to whoever controls it.
DEVELOPER_PERMISSIONS = [IsAuthenticated, RequiresVerifiedEmail]
OK_SERIALIZER = inline_serializer("PluginOk", {"ok": serializers.BooleanField()})
PAGE_SIZE = 20


def _unix(value: Any) -> int | None:
    return int(value.timestamp()) if value else None


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


class PluginListingSerializer(serializers.Serializer):
    """The earlier backend's ``PluginManifest`` plus rating and installs."""

    id = serializers.CharField(source="slug")
    name = serializers.CharField()
    description = serializers.CharField()
    version = serializers.SerializerMethodField()
    author = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    category = serializers.CharField()
    price_cents = serializers.IntegerField()
    rating = serializers.SerializerMethodField(help_text="Average stars (1-5), null before the first rating.")
    rating_count = serializers.IntegerField()
    installs = serializers.IntegerField(source="install_count")

    @staticmethod
    def _listed(obj: Plugin) -> PluginVersion:
        assert obj.latest_version is not None  # the catalog holds only plugins with an approved version
        return obj.latest_version

    def get_version(self, obj: Plugin) -> str:
        return self._listed(obj).version

    def get_author(self, obj: Plugin) -> str:
        return str(self._listed(obj).manifest.get("author", ""))

    def get_permissions(self, obj: Plugin) -> list[str]:
        return list(self._listed(obj).manifest.get("permissions", []))

    def get_rating(self, obj: Plugin) -> float | None:
        return round(obj.rating_avg, 2) if obj.rating_avg is not None else None


class PluginListApi(APIView):
    permission_classes = [IsAuthenticated, MarketplacePermission]

    class FilterSerializer(serializers.Serializer):
        category = serializers.ChoiceField(choices=[c.value for c in PluginCategory], required=False)
        q = serializers.CharField(required=False, max_length=200, allow_blank=True)
        page = serializers.IntegerField(required=False, min_value=1, max_value=PAGE_MAX, default=1)
        sort = serializers.ChoiceField(choices=[s.value for s in CatalogSort], required=False)

    class OutputSerializer(serializers.Serializer):
        plugins = PluginListingSerializer(many=True)
        total = serializers.IntegerField()
        page = serializers.IntegerField()

    @extend_schema(
        parameters=[
            OpenApiParameter("category", str, enum=[c.value for c in PluginCategory]),
            OpenApiParameter("q", str, description="Full-text search (PostgreSQL websearch syntax)."),
            page_parameter(),
            OpenApiParameter("sort", str, enum=[s.value for s in CatalogSort]),
        ],
        responses={200: OutputSerializer},
        operation_id="plugins_list",
        description="Approved, non-suspended plugins (their latest approved version), 20 a page. "
        "Default order: relevance with `q`, else newest.",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        plugins = catalog_search(category=data.get("category"), q=data.get("q") or None, sort=data.get("sort"))
        page = data["page"]
        rows = list(page_slice(plugins, page=page, limit=PAGE_SIZE))
        total = plugins.count() if len(rows) == PAGE_SIZE or page > 1 else len(rows)
        return Response({"plugins": PluginListingSerializer(rows, many=True).data, "total": total, "page": page})


class PluginDetailApi(APIView):
    permission_classes = [IsAuthenticated, MarketplacePermission]

    class OutputSerializer(PluginListingSerializer):
        installed = serializers.SerializerMethodField()

        def get_installed(self, obj: Plugin) -> bool:
            return active_install(user=self.context["user"], plugin=obj) is not None

    @extend_schema(responses={200: OutputSerializer}, operation_id="plugins_retrieve")
    def get(self, request: Request, slug: str) -> Response:
        plugin = catalog_plugin_get(slug=slug)
        return Response(self.OutputSerializer(plugin, context={"user": request.user}).data)


class PluginInstallApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502
    permission_classes = [IsAuthenticated, MarketplacePermission]

    class InputSerializer(serializers.Serializer):
        plugin_id = serializers.CharField(required=False, help_text="Optional; the path names the plugin.")

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        download_url = serializers.URLField(required=False)
        version = serializers.CharField(required=False)
        status = serializers.CharField(required=False, help_text="'installed' or 'payment_required'.")
        client_secret = serializers.CharField(required=False, help_text="For Stripe.js confirmPayment.")
        purchase_id = serializers.UUIDField(required=False)
        amount_cents = serializers.IntegerField(required=False)
        currency = serializers.CharField(required=False)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            202: OpenApiResponse(
                OutputSerializer,
                description="A paid plugin not yet paid: `{ok: false, status: 'payment_required', client_secret, "
                "purchase_id, amount_cents, currency}`. Confirm the PaymentIntent with Stripe.js; the plugin is "
                "installed when Stripe reports the payment, then this endpoint answers 200.",
            ),
        },
        operation_id="plugins_install",
        description="Install the plugin's latest approved version: `{ok: true, download_url}` with a short-lived "
        "download link. Never approved → 404 `plugin_not_available`; suspended → 409 `plugin_suspended`.",
    )
    def post(self, request: Request, slug: str) -> Response:
        outcome = plugin_install(user=request.user, slug=slug)
        if outcome.install is not None:
            return Response(_installed_body(request, outcome.install))
        purchase = outcome.purchase
        assert purchase is not None  # an outcome without an install is a purchase to pay
        return Response(
            {
                "ok": False,
                "status": "payment_required",
                "client_secret": purchase.client_secret,
                "purchase_id": str(purchase.pk),
                "amount_cents": purchase.amount_cents,
                "currency": purchase.currency,
            },
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(responses={200: OK_SERIALIZER}, operation_id="plugins_uninstall")
    def delete(self, request: Request, slug: str) -> Response:
        plugin_uninstall(user=request.user, slug=slug)
        return Response({"ok": True})


def _installed_body(request: Request, install: PluginInstall) -> dict[str, Any]:
    return {
        "ok": True,
        "status": "installed",
        "version": install.version.version,
        "download_url": download_url_for(install=install, build_absolute_uri=request.build_absolute_uri),
        "expires_in": settings.MARKETPLACE_DOWNLOAD_URL_MAX_AGE,
    }


class PluginDownloadUrlApi(APIView):
    permission_classes = [IsAuthenticated, MarketplacePermission]

    @extend_schema(
        responses={200: inline_serializer("PluginDownloadUrl", {"download_url": serializers.URLField()})},
        description="A fresh short-lived download link of the installed version (installers only).",
    )
    def get(self, request: Request, slug: str) -> Response:
        plugin = Plugin.objects.filter(slug=slug).first()
        install = active_install(user=request.user, plugin=plugin) if plugin else None
        if install is None:
            raise ApplicationError(MarketplaceErrorCode.NOT_INSTALLED, "This plugin is not installed.", status=404)
        return Response(_installed_body(request, install))


class PluginPackageDownloadApi(APIView):
    """The package bytes behind a signed, expiring link (the token is the credential)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY}, auth=[])
    def get(self, request: Request, token: str) -> BlobFileResponse:
        install = download_install_for_token(token=token)
        version = install.version
        response = BlobFileResponse(
            blob_open(key=version.package_key),
            content_type="application/zip",
            as_attachment=True,
            filename=f"{install.plugin.slug}-{version.version}.zip",
        )
        response["Content-Length"] = str(version.package_size)
        response["X-Checksum"] = version.package_sha256
        return response


class PluginRatingApi(APIView):
    permission_classes = [IsAuthenticated, MarketplacePermission]

    class InputSerializer(serializers.Serializer):
        stars = serializers.IntegerField(min_value=1, max_value=5)
        text = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    class OutputSerializer(serializers.Serializer):
        stars = serializers.IntegerField()
        text = serializers.CharField()
        rating = serializers.FloatField(allow_null=True)
        rating_count = serializers.IntegerField()

    def _save(self, request: Request, slug: str, *, update: bool) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rating = plugin_rate(user=request.user, slug=slug, update=update, **serializer.validated_data)
        plugin = Plugin.objects.get(pk=rating.plugin_id)
        body = {
            "stars": rating.stars,
            "text": rating.text,
            "rating": round(plugin.rating_avg, 2) if plugin.rating_avg is not None else None,
            "rating_count": plugin.rating_count,
        }
        return Response(body, status=status.HTTP_200_OK if update else status.HTTP_201_CREATED)

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        description="Rate an installed plugin once (1-5 stars, optional text); a second POST is 409 "
        "`already_rated`, not installed is 403 `not_installed`.",
    )
    def post(self, request: Request, slug: str) -> Response:
        return self._save(request, slug, update=False)

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer}, description="Change your rating.")
    def put(self, request: Request, slug: str) -> Response:
        return self._save(request, slug, update=True)


# ---------------------------------------------------------------------------------------------
# Developers
# ---------------------------------------------------------------------------------------------


class ReviewNoteSerializer(serializers.Serializer):
    decision = serializers.CharField()
    notes = serializers.CharField()
    reviewed_at = serializers.SerializerMethodField()

    def get_reviewed_at(self, obj: Any) -> int | None:
        return _unix(obj.reviewed_at)


class DeveloperVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    status = serializers.CharField()
    manifest = serializers.JSONField()
    package_sha256 = serializers.CharField()
    package_size = serializers.IntegerField()
    checklist = serializers.JSONField()
    submitted_at = serializers.SerializerMethodField()
    decided_at = serializers.SerializerMethodField()
    reviews = ReviewNoteSerializer(many=True)

    def get_submitted_at(self, obj: PluginVersion) -> int | None:
        return _unix(obj.submitted_at)

    def get_decided_at(self, obj: PluginVersion) -> int | None:
        return _unix(obj.decided_at)


class DeveloperPluginSerializer(serializers.Serializer):
    id = serializers.CharField(source="slug")
    name = serializers.CharField()
    status = serializers.CharField()
    category = serializers.CharField()
    price_cents = serializers.IntegerField()
    listed_version = serializers.CharField(source="latest_version.version", default=None)
    installs = serializers.IntegerField(source="install_count")
    rating = serializers.FloatField(source="rating_avg", allow_null=True)
    versions = DeveloperVersionSerializer(many=True)


class DeveloperPluginListApi(APIView):
    permission_classes = DEVELOPER_PERMISSIONS

    class InputSerializer(serializers.Serializer):
        manifest = serializers.JSONField(help_text="The plugin manifest (id, name, description, version, …).")

    @extend_schema(responses={200: DeveloperPluginSerializer(many=True)}, operation_id="plugins_developer_list")
    def get(self, request: Request) -> Response:
        return Response(DeveloperPluginSerializer(developer_plugins(developer=request.user), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: DeveloperVersionSerializer},
        operation_id="plugins_developer_create",
        description="Create a plugin from its manifest; its first version starts as a draft. Then upload the "
        "package and submit it.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = plugin_create(developer=request.user, manifest_data=serializer.validated_data["manifest"])
        return Response(DeveloperVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class DeveloperPluginDetailApi(APIView):
    permission_classes = DEVELOPER_PERMISSIONS

    @extend_schema(responses={200: DeveloperPluginSerializer}, operation_id="plugins_developer_retrieve")
    def get(self, request: Request, slug: str) -> Response:
        return Response(DeveloperPluginSerializer(developer_plugin_get(developer=request.user, slug=slug)).data)


class DeveloperVersionCreateApi(APIView):
    permission_classes = DEVELOPER_PERMISSIONS

    class InputSerializer(serializers.Serializer):
        manifest = serializers.JSONField()

    @extend_schema(request=InputSerializer, responses={201: DeveloperVersionSerializer})
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = plugin_version_create(
            developer=request.user, plugin_slug=slug, manifest_data=serializer.validated_data["manifest"]
        )
        return Response(DeveloperVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class DeveloperPackageUploadApi(APIView):
    permission_classes = DEVELOPER_PERMISSIONS

    @extend_schema(
        parameters=[OpenApiParameter("X-Package-Sha256", str, OpenApiParameter.HEADER, required=True)],
        request={"application/zip": OpenApiTypes.BINARY},
        responses={200: DeveloperVersionSerializer},
        description="Upload a draft version's package (a zip) as the raw body. It is streamed to storage and "
        "hashed on the way; a body over MARKETPLACE_PACKAGE_MAX_BYTES is 413 `package_too_large`, one that "
        "does not match X-Package-Sha256 is 400 `checksum_mismatch`; nothing is stored then. The answer "
        "carries the security checklist.",
    )
    def put(self, request: Request, slug: str, version: str) -> Response:
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        row = plugin_version_package_upload(
            developer=request.user,
            plugin_slug=slug,
            version=version,
            # The raw stream: DRF parsing or request.body would load the package whole.
            read=request._request.read,
            declared_sha256=request.headers.get("X-Package-Sha256"),
            content_length=int(raw_length) if raw_length.isdigit() else None,
        )
        return Response(DeveloperVersionSerializer(row).data)


class DeveloperVersionSubmitApi(APIView):
    permission_classes = DEVELOPER_PERMISSIONS

    @extend_schema(request=None, responses={200: DeveloperVersionSerializer})
    def post(self, request: Request, slug: str, version: str) -> Response:
        row = plugin_version_submit(developer=request.user, plugin_slug=slug, version=version)
        return Response(DeveloperVersionSerializer(row).data)


class DeveloperConnectApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502
    permission_classes = DEVELOPER_PERMISSIONS

    class OutputSerializer(serializers.Serializer):
        account_id = serializers.CharField()
        onboarding = serializers.CharField()
        charges_enabled = serializers.BooleanField()
        payouts_enabled = serializers.BooleanField()
        onboarding_url = serializers.URLField(required=False)

    @extend_schema(
        request=None,
        responses={200: OutputSerializer},
        operation_id="plugins_developer_connect",
        description="Create the developer's Stripe Connect Express account (once) and answer an onboarding link.",
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        account, url = developer_onboarding_link(user=request.user)
        return Response({**self._state(account), "onboarding_url": url})

    @extend_schema(responses={200: OutputSerializer}, operation_id="plugins_developer_connect_status")
    def get(self, request: Request) -> Response:
        account = getattr(request.user, "developer_account", None)
        if account is None:
            raise NotFoundError("Connect account")
        return Response(self._state(developer_account_sync(stripe_account_id=account.stripe_account_id)))

    @staticmethod
    def _state(account: Any) -> dict[str, Any]:
        return {
            "account_id": account.stripe_account_id,
            "onboarding": account.onboarding,
            "charges_enabled": account.charges_enabled,
            "payouts_enabled": account.payouts_enabled,
        }


class DeveloperEarningsApi(APIView):
    permission_classes = DEVELOPER_PERMISSIONS

    class FilterSerializer(serializers.Serializer):
        period = serializers.CharField(help_text="A month, YYYY-MM (UTC).")

    class OutputSerializer(serializers.Serializer):
        period = serializers.CharField()
        currency = serializers.CharField()
        sales = serializers.IntegerField()
        gross_cents = serializers.IntegerField()
        platform_fee_cents = serializers.IntegerField()
        developer_share_cents = serializers.IntegerField()
        refunds_cents = serializers.IntegerField()
        disputes_cents = serializers.IntegerField()
        net_cents = serializers.IntegerField()
        payouts_cents = serializers.IntegerField()

    @extend_schema(
        parameters=[OpenApiParameter("period", str, required=True)],
        responses={200: OutputSerializer},
        description="A month's totals in integer cents: fee = 30 % of the gross rounded half up, share = "
        "gross - fee; refunds/disputes are the developer share they reversed; net = share - refunds - "
        "disputes; payouts are what Stripe paid out to the developer's bank that month.",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        earnings = developer_earnings(
            developer=request.user, period=filters.validated_data["period"], currency=settings.BILLING_CURRENCY
        )
        return Response(earnings._asdict())
