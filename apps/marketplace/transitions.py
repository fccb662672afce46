"""The one way a plugin version or a plugin listing changes status.

``plugin_version_transition`` validates the move against the allowed graph, refuses a developer
reviewing their own plugin, requires notes for decisions, writes the audit row and the
``PluginReview``, and on approval lists the plugin (latest version, search vector).
``plugin_listing_transition`` does the same for suspending and reinstating a listed plugin.
"""

from __future__ import annotations

from typing import Any, Final

from django.contrib.postgres.search import SearchVector
from django.db import transaction
from django.utils import timezone

from apps.core.audit import AuditAction, audit_record
from apps.core.errors import ApplicationError

from .checklist import checklist_failures
from .error_codes import MarketplaceErrorCode
from .models import Plugin, PluginReview, PluginStatus, PluginVersion, ReviewDecision, VersionStatus
from .semver import SemVer

SEARCH_CONFIG: Final = "english"

VERSION_MOVES: Final[dict[str, frozenset[str]]] = {
    VersionStatus.DRAFT: frozenset({VersionStatus.PENDING_REVIEW}),
    VersionStatus.PENDING_REVIEW: frozenset({VersionStatus.APPROVED, VersionStatus.REJECTED}),
    VersionStatus.APPROVED: frozenset(),
    VersionStatus.REJECTED: frozenset(),
}
LISTING_MOVES: Final[dict[str, frozenset[str]]] = {
    PluginStatus.UNLISTED: frozenset({PluginStatus.LISTED}),
    PluginStatus.LISTED: frozenset({PluginStatus.SUSPENDED}),
    PluginStatus.SUSPENDED: frozenset({PluginStatus.LISTED}),
}
_VERSION_AUDIT: Final = {
    VersionStatus.PENDING_REVIEW: AuditAction.PLUGIN_SUBMITTED,
    VersionStatus.APPROVED: AuditAction.PLUGIN_APPROVED,
    VersionStatus.REJECTED: AuditAction.PLUGIN_REJECTED,
}
_DECISIONS: Final = {VersionStatus.APPROVED: ReviewDecision.APPROVED, VersionStatus.REJECTED: ReviewDecision.REJECTED}


def _invalid(current: str, target: str, what: str) -> ApplicationError:
    return ApplicationError(
        MarketplaceErrorCode.INVALID_TRANSITION,
        f"A {what} cannot move from '{current}' to '{target}'.",
        status=409,
        extra={"from": current, "to": target},
    )


def _require_reviewer(*, plugin: Plugin, actor: Any, notes: str) -> str:
    if actor is None or not getattr(actor, "pk", None):
        raise ApplicationError(MarketplaceErrorCode.INVALID_TRANSITION, "Decisions need a reviewer.", status=403)
    if actor.pk == plugin.developer_id:
        raise ApplicationError(
            MarketplaceErrorCode.SELF_REVIEW_FORBIDDEN,
            "Developers cannot review their own plugins; another reviewer must decide.",
            status=403,
        )
    notes = (notes or "").strip()
    if not notes:
        raise ApplicationError(
            MarketplaceErrorCode.REVIEW_NOTES_REQUIRED,
            "A decision needs notes for the developer.",
            fields={"notes": ["Required."]},
        )
    return notes


def plugin_search_vector_refresh(*, plugin_id: Any) -> None:
    """Recompute the stored tsvector from the plugin's current name, description and category."""
    Plugin.objects.filter(pk=plugin_id).update(
        search_vector=SearchVector("name", weight="A", config=SEARCH_CONFIG)
        + SearchVector("description", weight="B", config=SEARCH_CONFIG)
        + SearchVector("category", weight="C", config=SEARCH_CONFIG)
    )


def _list_version(*, plugin: Plugin, version: PluginVersion) -> None:
    """An approved version becomes the listed one if it is the highest approved version."""
    current = plugin.latest_version
    if current is not None and SemVer(current.version) > SemVer(version.version):
        return
    manifest = version.manifest
    plugin.latest_version = version
    plugin.name = manifest["name"]
    plugin.description = manifest["description"]
    plugin.category = manifest["category"]
    plugin.price_cents = manifest.get("price_cents", 0)
    fields = ["latest_version", "name", "description", "category", "price_cents", "updated_at"]
    if plugin.status == PluginStatus.UNLISTED:
        plugin.status = PluginStatus.LISTED
        plugin.listed_at = timezone.now()
        fields += ["status", "listed_at"]
    plugin.save(update_fields=fields)
    plugin_search_vector_refresh(plugin_id=plugin.pk)


def plugin_version_transition(
    *, version: PluginVersion, to_status: VersionStatus, actor: Any, notes: str = ""
) -> PluginVersion:
    """Move a version along draft → pending_review → approved | rejected (see ``VERSION_MOVES``)."""
    with transaction.atomic():
        # Lock the plugin first, then the version: the order every writer of both uses.
        plugin = (
            Plugin.objects.select_for_update(of=("self",)).select_related("latest_version").get(pk=version.plugin_id)
        )
        locked = PluginVersion.objects.select_for_update().get(pk=version.pk)
        current = locked.status
        if to_status not in VERSION_MOVES[current]:
            raise _invalid(current, to_status, "plugin version")
        now = timezone.now()
        data: dict[str, Any] = {"plugin": plugin.slug, "version": locked.version, "from": current, "to": to_status}
        if to_status == VersionStatus.PENDING_REVIEW:
            if actor is None or actor.pk != plugin.developer_id:
                raise _invalid(current, to_status, "plugin version (only its developer submits it)")
            if not locked.package_key:
                raise ApplicationError(
                    MarketplaceErrorCode.PACKAGE_MISSING, "Upload the package before submitting.", status=409
                )
            locked.submitted_at = now
        else:
            notes = _require_reviewer(plugin=plugin, actor=actor, notes=notes)
            if to_status == VersionStatus.APPROVED and checklist_failures(locked.checklist):
                raise ApplicationError(
                    MarketplaceErrorCode.CHECKLIST_FAILED,
                    "The security checklist has failures: " + "; ".join(checklist_failures(locked.checklist)),
                    status=409,
                )
            locked.decided_at = now
            PluginReview.objects.create(
                plugin=plugin,
                version=locked,
                reviewer=actor,
                decision=_DECISIONS[to_status],
                notes=notes,
                reviewed_at=now,
            )
            data["notes"] = notes
        locked.status = to_status
        locked.save(update_fields=["status", "submitted_at", "decided_at", "updated_at"])
        if to_status == VersionStatus.APPROVED:
            _list_version(plugin=plugin, version=locked)
        audit_record(
            action=_VERSION_AUDIT[to_status], actor=actor, target=locked, subject_user=plugin.developer, data=data
        )
        return locked


def plugin_listing_transition(*, plugin: Plugin, to_status: PluginStatus, actor: Any, notes: str) -> Plugin:
    """Suspend a listed plugin (hidden, no new installs) or reinstate a suspended one."""
    if to_status not in (PluginStatus.SUSPENDED, PluginStatus.LISTED):
        raise _invalid(plugin.status, to_status, "plugin")
    with transaction.atomic():
        locked = Plugin.objects.select_for_update().get(pk=plugin.pk)
        current = locked.status
        if to_status not in LISTING_MOVES[current] or locked.latest_version_id is None:
            raise _invalid(current, to_status, "plugin")
        notes = _require_reviewer(plugin=locked, actor=actor, notes=notes)
        locked.status = to_status
        locked.save(update_fields=["status", "updated_at"])
        suspended = to_status == PluginStatus.SUSPENDED
        PluginReview.objects.create(
            plugin=locked,
            version=None,
            reviewer=actor,
            decision=ReviewDecision.SUSPENDED if suspended else ReviewDecision.REINSTATED,
            notes=notes,
            reviewed_at=timezone.now(),
        )
        audit_record(
            action=AuditAction.PLUGIN_SUSPENDED if suspended else AuditAction.PLUGIN_REINSTATED,
            actor=actor,
            target=locked,
            subject_user=locked.developer,
            data={"plugin": locked.slug, "from": current, "to": to_status, "notes": notes},
        )
        return locked
