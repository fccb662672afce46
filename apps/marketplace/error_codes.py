"""Stable error codes of the marketplace: manifests, packages, reviews, installs, payments."""

from enum import StrEnum


class MarketplaceErrorCode(StrEnum):
    INVALID_MANIFEST = "invalid_manifest"
    MANIFEST_ID_MISMATCH = "manifest_id_mismatch"
    PLUGIN_ID_TAKEN = "plugin_id_taken"
    VERSION_EXISTS = "version_exists"
    PACKAGE_TOO_LARGE = "package_too_large"
    PACKAGE_EMPTY = "package_empty"
    PACKAGE_MISSING = "package_missing"
    PACKAGE_ALREADY_UPLOADED = "package_already_uploaded"
    INVALID_TRANSITION = "invalid_transition"
    SELF_REVIEW_FORBIDDEN = "self_review_forbidden"
    REVIEW_NOTES_REQUIRED = "review_notes_required"
    CHECKLIST_FAILED = "checklist_failed"
    PLUGIN_NOT_AVAILABLE = "plugin_not_available"
    PLUGIN_SUSPENDED = "plugin_suspended"
    NOT_INSTALLED = "not_installed"
    ALREADY_RATED = "already_rated"
    DEVELOPER_NOT_PAYABLE = "developer_not_payable"
    DOWNLOAD_LINK_INVALID = "download_link_invalid"
    INVALID_PERIOD = "invalid_period"
