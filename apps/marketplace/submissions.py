"""Developers' writes: create a plugin from its manifest, add versions, stream a version's package
into blob storage (hashed as it goes, verified against the declared SHA-256), compute the security
checklist, and submit for review.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.core.errors import ApplicationError, NotFoundError
from apps.storage.blob_store import (
    CHUNK_SIZE,
    HashingReader,
    LimitExceeded,
    blob_delete,
    blob_new_key,
    blob_open,
    blob_write_stream,
)
from apps.storage.checksums import checksum_matches, checksum_normalize
from apps.storage.error_codes import StorageErrorCode

from .checklist import checklist_build, unpacked_limit
from .error_codes import MarketplaceErrorCode
from .manifest import ManifestErrors, PluginManifest, manifest_parse
from .models import Plugin, PluginVersion, VersionStatus
from .package_inspection import inspect_package
from .transitions import plugin_version_transition


def manifest_validate(*, data: Any) -> PluginManifest:
    """The parsed manifest, or a 400 ``invalid_manifest`` naming each offending field."""
    try:
        return manifest_parse(data, max_price_cents=settings.MARKETPLACE_MAX_PRICE_CENTS)
    except ManifestErrors as exc:
        raise ApplicationError(
            MarketplaceErrorCode.INVALID_MANIFEST, f"The manifest is invalid: {exc}", fields=exc.fields
        ) from None


def _version_create(*, plugin: Plugin, manifest: PluginManifest) -> PluginVersion:
    if manifest.id != plugin.slug:
        raise ApplicationError(
            MarketplaceErrorCode.MANIFEST_ID_MISMATCH,
            f"The manifest id '{manifest.id}' is not this plugin's id '{plugin.slug}'.",
            fields={"manifest.id": [f"Must be '{plugin.slug}'."]},
        )
    try:
        with transaction.atomic():
            return PluginVersion.objects.create(plugin=plugin, version=manifest.version, manifest=manifest.as_json())
    except IntegrityError:
        raise ApplicationError(
            MarketplaceErrorCode.VERSION_EXISTS,
            f"Version {manifest.version} of '{plugin.slug}' already exists; bump the version.",
            status=409,
            fields={"manifest.version": ["Already exists."]},
        ) from None


def plugin_create(*, developer: Any, manifest_data: Any) -> PluginVersion:
    """A new (unlisted) plugin owned by ``developer`` and its first draft version."""
    manifest = manifest_validate(data=manifest_data)
    try:
        with transaction.atomic():
            plugin = Plugin.objects.create(
                slug=manifest.id,
                developer=developer,
                name=manifest.name,
                description=manifest.description,
                category=manifest.category,
                price_cents=manifest.price_cents,
            )
            return _version_create(plugin=plugin, manifest=manifest)
    except IntegrityError:
        raise ApplicationError(
            MarketplaceErrorCode.PLUGIN_ID_TAKEN,
            f"The plugin id '{manifest.id}' is taken.",
            status=409,
            fields={"manifest.id": ["Taken."]},
        ) from None


def plugin_version_create(*, developer: Any, plugin_slug: str, manifest_data: Any) -> PluginVersion:
    plugin = Plugin.objects.filter(slug=plugin_slug, developer=developer).first()
    if plugin is None:
        raise NotFoundError("Plugin")
    return _version_create(plugin=plugin, manifest=manifest_validate(data=manifest_data))


def developer_version_get(*, developer: Any, plugin_slug: str, version: str) -> PluginVersion:
    row = (
        PluginVersion.objects.select_related("plugin")
        .filter(plugin__slug=plugin_slug, plugin__developer=developer, version=version)
        .first()
    )
    if row is None:
        raise NotFoundError("Plugin version")
    return row


def _package_checklist(*, manifest: dict[str, Any], key: str, sha256: str, size: int) -> list[dict[str, Any]]:
    """Re-read the stored package: re-hash it (what is stored is what was verified) and inspect it."""
    with blob_open(key=key) as handle:
        digest = hashlib.sha256()
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
        handle.seek(0)
        report = inspect_package(handle, max_unpacked_bytes=unpacked_limit(settings.MARKETPLACE_PACKAGE_MAX_BYTES))
    return checklist_build(
        manifest=manifest,
        manifest_valid=True,
        hash_matches=checksum_matches(computed_hex=digest.hexdigest(), expected_hex=sha256),
        size_bytes=size,
        max_bytes=settings.MARKETPLACE_PACKAGE_MAX_BYTES,
        report=report,
    )


def _too_large(limit: int) -> ApplicationError:
    return ApplicationError(
        MarketplaceErrorCode.PACKAGE_TOO_LARGE,
        f"The package is larger than {limit} bytes; nothing was stored.",
        status=413,
        extra={"limit_bytes": limit},
    )


def plugin_version_package_upload(
    *,
    developer: Any,
    plugin_slug: str,
    version: str,
    read: Callable[[int], bytes],
    declared_sha256: str | None,
    content_length: int | None,
) -> PluginVersion:
    """Stream a draft version's package to blob storage with bounded memory; keep it only if it
    matches ``declared_sha256`` and fits the limit, then store the checklist with the version."""
    row = developer_version_get(developer=developer, plugin_slug=plugin_slug, version=version)
    if row.status != VersionStatus.DRAFT:
        raise ApplicationError(
            MarketplaceErrorCode.PACKAGE_ALREADY_UPLOADED,
            "Only a draft version's package can be uploaded; add a new version instead.",
            status=409,
        )
    checksum = checksum_normalize(declared_sha256 or "", field="X-Package-Sha256")
    limit = settings.MARKETPLACE_PACKAGE_MAX_BYTES
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    key = blob_new_key(kind="plugins", user_id=developer.pk)
    reader = HashingReader(read, limit=limit)
    try:
        blob_write_stream(key=key, reader=reader)
        if reader.size == 0:
            raise ApplicationError(MarketplaceErrorCode.PACKAGE_EMPTY, "The package body is empty.")
        if not checksum_matches(computed_hex=reader.hexdigest(), expected_hex=checksum):
            raise ApplicationError(
                StorageErrorCode.CHECKSUM_MISMATCH,
                "The package does not match X-Package-Sha256; nothing was stored.",
                fields={"X-Package-Sha256": ["Does not match the SHA-256 of the body."]},
            )
        checklist = _package_checklist(manifest=row.manifest, key=key, sha256=checksum, size=reader.size)
        with transaction.atomic():
            locked = PluginVersion.objects.select_for_update().get(pk=row.pk)
            if locked.status != VersionStatus.DRAFT:
                raise ApplicationError(
                    MarketplaceErrorCode.PACKAGE_ALREADY_UPLOADED, "The version was submitted meanwhile.", status=409
                )
            old_key = locked.package_key
            locked.package_key, locked.package_sha256, locked.package_size = key, checksum, reader.size
            locked.checklist = checklist
            locked.save(update_fields=["package_key", "package_sha256", "package_size", "checklist", "updated_at"])
            if old_key:
                transaction.on_commit(lambda: blob_delete(key=old_key))
            return locked
    except LimitExceeded:
        blob_delete(key=key)
        raise _too_large(limit) from None
    except BaseException:
        blob_delete(key=key)  # a mismatch, an interruption, a storage error: no orphan bytes
        raise
    finally:
        reader.close()


def plugin_version_submit(*, developer: Any, plugin_slug: str, version: str) -> PluginVersion:
    row = developer_version_get(developer=developer, plugin_slug=plugin_slug, version=version)
    return plugin_version_transition(version=row, to_status=VersionStatus.PENDING_REVIEW, actor=developer)
