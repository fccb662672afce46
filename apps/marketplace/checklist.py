"""The automatic security checklist stored with each plugin version and shown to reviewers.

A list of ``{key, label, passed, detail}`` items; framework-free (inputs are passed in).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from .manifest import PluginPermission, binary_blob_findings
from .package_inspection import MAX_COMPRESSION_RATIO, MAX_LISTED, MAX_MEMBERS, PackageReport


class CheckKey(StrEnum):
    MANIFEST_VALID = "manifest_valid"
    PERMISSIONS_ALLOWED = "permissions_allowed"
    NO_BINARY_BLOBS = "no_binary_blobs"
    PACKAGE_HASH = "package_hash_matches"
    PACKAGE_SIZE = "package_size_within_limit"
    PACKAGE_IS_ZIP = "package_is_zip"
    NO_EXECUTABLES = "no_executables"
    NO_SYMLINKS = "no_symlinks"
    NO_PATH_ESCAPE = "no_path_escape"
    NO_NESTED_ARCHIVES = "no_nested_archives"
    UNPACKED_SIZE = "unpacked_size_within_limit"
    COMPRESSION_RATIO = "compression_ratio_within_limit"


LABELS: Final[dict[CheckKey, str]] = {
    CheckKey.MANIFEST_VALID: "Manifest matches the schema",
    CheckKey.PERMISSIONS_ALLOWED: "Permissions are from the allowed set",
    CheckKey.NO_BINARY_BLOBS: "No binary blobs in the manifest",
    CheckKey.PACKAGE_HASH: "Stored package matches its SHA-256",
    CheckKey.PACKAGE_SIZE: "Package size within the limit",
    CheckKey.PACKAGE_IS_ZIP: "Package is a readable zip archive",
    CheckKey.NO_EXECUTABLES: "No executables or native addons",
    CheckKey.NO_SYMLINKS: "No symlinks",
    CheckKey.NO_PATH_ESCAPE: "No paths escaping the package root",
    CheckKey.NO_NESTED_ARCHIVES: "No nested archives",
    CheckKey.UNPACKED_SIZE: "Unpacked size and file count within limits",
    CheckKey.COMPRESSION_RATIO: "No zip bomb (compression ratio per file and in total)",
}
# A zip whose contents unpack to more than this many times the package limit is a zip bomb.
UNPACK_RATIO_LIMIT: Final = 10


def unpacked_limit(max_bytes: int) -> int:
    return max_bytes * UNPACK_RATIO_LIMIT


def _item(key: CheckKey, passed: bool, detail: str = "") -> dict[str, Any]:
    return {"key": str(key), "label": LABELS[key], "passed": bool(passed), "detail": detail}


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" (+{more} more)" if more > 0 else "")


def _ratio_detail(report: PackageReport) -> str:
    if report.compression_bombs:
        return f"over {MAX_COMPRESSION_RATIO}:1 in {_listed(report.compression_bombs)} (reading stopped)"
    if report.total_ratio_exceeded:
        return f"the files together unpack over {MAX_COMPRESSION_RATIO}:1 (reading stopped)"
    return f"max {MAX_COMPRESSION_RATIO}:1 per file and in total"


def checklist_build(
    *,
    manifest: dict[str, Any],
    manifest_valid: bool,
    hash_matches: bool,
    size_bytes: int,
    max_bytes: int,
    report: PackageReport,
) -> list[dict[str, Any]]:
    allowed = {str(p) for p in PluginPermission}
    bad_permissions = [p for p in manifest.get("permissions", []) if str(p) not in allowed]
    blobs = binary_blob_findings(manifest)
    unpack_limit = unpacked_limit(max_bytes)
    ratio_ok = not report.compression_bombs and not report.total_ratio_exceeded
    return [
        _item(CheckKey.MANIFEST_VALID, manifest_valid),
        _item(CheckKey.PERMISSIONS_ALLOWED, not bad_permissions, _listed(bad_permissions)),
        _item(CheckKey.NO_BINARY_BLOBS, not blobs, _listed(sorted(blobs))),
        _item(CheckKey.PACKAGE_HASH, hash_matches, "" if hash_matches else "The stored bytes changed."),
        _item(CheckKey.PACKAGE_SIZE, 0 < size_bytes <= max_bytes, f"{size_bytes} of {max_bytes} bytes"),
        _item(CheckKey.PACKAGE_IS_ZIP, report.is_zip and not report.error, report.error),
        _item(CheckKey.NO_EXECUTABLES, report.is_zip and not report.executables, _listed(report.executables)),
        _item(CheckKey.NO_SYMLINKS, report.is_zip and not report.symlinks, _listed(report.symlinks)),
        _item(CheckKey.NO_PATH_ESCAPE, report.is_zip and not report.escaping_paths, _listed(report.escaping_paths)),
        _item(
            CheckKey.NO_NESTED_ARCHIVES, report.is_zip and not report.nested_archives, _listed(report.nested_archives)
        ),
        _item(
            CheckKey.UNPACKED_SIZE,
            report.is_zip and not report.too_many_members and not report.unpacked_limit_exceeded,
            f"{report.member_count} files (max {MAX_MEMBERS}), "
            + (
                f"over {unpack_limit} bytes unpacked (reading stopped)"
                if report.unpacked_limit_exceeded
                else f"{report.uncompressed_bytes} bytes unpacked (max {unpack_limit})"
            ),
        ),
        _item(
            CheckKey.COMPRESSION_RATIO,
            report.is_zip and ratio_ok,
            _ratio_detail(report),
        ),
    ]


def checklist_passed(checklist: list[dict[str, Any]]) -> bool:
    return bool(checklist) and all(item.get("passed") for item in checklist)


def checklist_failures(checklist: list[dict[str, Any]]) -> list[str]:
    return [str(item.get("label", item.get("key"))) for item in checklist if not item.get("passed")]
