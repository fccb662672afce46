"""Short-lived download links for an installed plugin's approved package.

On S3 the link is a presigned GET; otherwise it points at our download view with a token signed by
Django's ``TimestampSigner``, which names the install (and so the user and the version) and expires
after ``MARKETPLACE_DOWNLOAD_URL_MAX_AGE`` seconds.
"""

from __future__ import annotations

from typing import Any, Final

from django.conf import settings
from django.core import signing
from django.urls import reverse

from apps.core.errors import ApplicationError
from apps.storage.blob_store import blob_storage_is_s3, s3_storage

from .error_codes import MarketplaceErrorCode
from .models import PluginInstall

_SALT: Final = "apps.marketplace.download"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT)


def download_url_for(*, install: PluginInstall, build_absolute_uri: Any) -> str:
    version = install.version
    max_age = settings.MARKETPLACE_DOWNLOAD_URL_MAX_AGE
    if blob_storage_is_s3():
        filename = f"{install.plugin.slug}-{version.version}.zip"
        return s3_storage().url(
            version.package_key,
            parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'},
            expire=max_age,
        )
    token = _signer().sign(str(install.pk))
    return build_absolute_uri(reverse("marketplace-download", kwargs={"token": token}))


def download_install_for_token(*, token: str) -> PluginInstall:
    """The active install a token names; expired, forged or uninstalled → 404 ``download_link_invalid``."""
    invalid = ApplicationError(
        MarketplaceErrorCode.DOWNLOAD_LINK_INVALID,
        "This download link is invalid or has expired; ask for a new one.",
        status=404,
    )
    try:
        install_id = _signer().unsign(token, max_age=settings.MARKETPLACE_DOWNLOAD_URL_MAX_AGE)
    except signing.BadSignature:
        raise invalid from None
    install = (
        PluginInstall.objects.select_related("version", "plugin")
        .filter(pk=install_id, uninstalled_at__isnull=True)
        .first()
    )
    if install is None or not install.version.package_key:
        raise invalid
    return install
