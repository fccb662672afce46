"""The plugin manifest: its schema (pydantic), the allowed permissions and categories, and the
rules that keep binary payloads out of it. Framework-free: takes a dict, returns a model or errors.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .semver import SemVer


class PluginPermission(StrEnum):
    """What a desktop plugin may ask the app for; anything else is refused at submission."""

    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    NOTES_READ = "notes:read"
    NOTES_WRITE = "notes:write"
    PROJECTS_READ = "projects:read"
    PROJECTS_WRITE = "projects:write"
    TIMELINES_READ = "timelines:read"
    TIMELINES_WRITE = "timelines:write"
    CLIENTS_READ = "clients:read"
    NETWORK = "network"
    STORAGE = "storage"
    NOTIFICATIONS = "notifications"
    CLIPBOARD = "clipboard"


class PluginCategory(StrEnum):
    PRODUCTIVITY = "productivity"
    TIME_TRACKING = "time_tracking"
    INTEGRATIONS = "integrations"
    REPORTING = "reporting"
    COMMUNICATION = "communication"
    FINANCE = "finance"
    AUTOMATION = "automation"
    APPEARANCE = "appearance"
    OTHER = "other"


PLUGIN_ID_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?$"
# Path segments of /api/v1/plugins/… that a plugin id must not shadow.
RESERVED_IDS: Final = frozenset({"developer", "downloads"})
MIN_PAID_PRICE_CENTS: Final = 50  # Stripe's smallest charge in EUR
MANIFEST_MAX_BYTES: Final = 64 * 1024
# A manifest string longer than this (outside the description) is not metadata.
STRING_MAX_CHARS: Final = 2000
# A long run of base64 alphabet with no spaces is an embedded binary, not prose.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{120,}={0,2}")
_DATA_URI = re.compile(r"^\s*data:", re.IGNORECASE)


def _binary_blob_reason(value: str) -> str | None:
    if _DATA_URI.match(value):
        return "data: URIs are not allowed; ship files in the package."
    if _BASE64_RUN.search(value):
        return "Looks like base64-encoded binary data; ship files in the package."
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in value):
        return "Contains control characters (binary data)."
    return None


def binary_blob_findings(data: Any, path: str = "") -> dict[str, str]:
    """Every string in ``data`` (recursively) that carries a binary payload, by its dotted path."""
    found: dict[str, str] = {}
    if isinstance(data, str):
        reason = _binary_blob_reason(data)
        if reason:
            found[path or "manifest"] = reason
    elif isinstance(data, dict):
        for key, value in data.items():
            found.update(binary_blob_findings(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.update(binary_blob_findings(value, f"{path}.{index}" if path else str(index)))
    return found


class PluginManifest(BaseModel):
    """The manifest the desktop client reads (the earlier backend's ``PluginManifest`` fields).

    Unknown keys are kept (plugins carry e.g. ``main`` or ``homepage``) but are subject to the
    same no-binary rule and size cap.
    """

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    id: str = Field(pattern=PLUGIN_ID_PATTERN, description="Lower-case slug, unique in the marketplace.")
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=STRING_MAX_CHARS)
    version: str
    author: str = Field(min_length=1, max_length=120)
    permissions: list[PluginPermission] = Field(default_factory=list, max_length=len(PluginPermission))
    category: PluginCategory
    price_cents: int = Field(default=0, ge=0, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_binary_payloads(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("The manifest must be a JSON object.")
        if len(json.dumps(data)) > MANIFEST_MAX_BYTES:
            raise ValueError(f"The manifest is larger than {MANIFEST_MAX_BYTES} bytes.")
        findings = binary_blob_findings(data)
        if findings:
            raise ValueError("; ".join(f"{path}: {reason}" for path, reason in sorted(findings.items())))
        for key, value in data.items():
            if key != "description" and isinstance(value, str) and len(value) > STRING_MAX_CHARS:
                raise ValueError(f"{key}: longer than {STRING_MAX_CHARS} characters.")
        return data

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_IDS:
            raise ValueError(f"'{value}' is reserved.")
        return value

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        SemVer(value)
        return value

    @field_validator("permissions")
    @classmethod
    def _unique_permissions(cls, value: list[PluginPermission]) -> list[PluginPermission]:
        if len(set(value)) != len(value):
            raise ValueError("Permissions must be listed once each.")
        return value

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def price_problem(price_cents: int, *, max_price_cents: int) -> str | None:
    """Why a price is not sellable, or None: free, or between the Stripe minimum and our maximum."""
    if price_cents == 0:
        return None
    if price_cents < MIN_PAID_PRICE_CENTS:
        return f"A paid plugin costs at least {MIN_PAID_PRICE_CENTS} cents (or 0 for free)."
    if price_cents > max_price_cents:
        return f"At most {max_price_cents} cents."
    return None


class ManifestErrors(Exception):
    """The manifest failed validation; ``fields`` maps ``manifest.<path>`` to reasons."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))
        self.fields = fields


def manifest_parse(data: Any, *, max_price_cents: int) -> PluginManifest:
    """Validate a manifest; raise ``ManifestErrors`` naming each offending field."""
    try:
        manifest = PluginManifest.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            location = ".".join(str(part) for part in error["loc"])
            key = f"manifest.{location}" if location else "manifest"
            fields.setdefault(key, []).append(str(error["msg"]).removeprefix("Value error, "))
        raise ManifestErrors(fields) from None
    problem = price_problem(manifest.price_cents, max_price_cents=max_price_cents)
    if problem:
        raise ManifestErrors({"manifest.price_cents": [problem]})
    return manifest
