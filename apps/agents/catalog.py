"""The agent types the client can configure (``GET agents/catalog``), with each one's config schema."""

from __future__ import annotations

from typing import Any, Final

from .models import DataType

_DATA_TYPES: Final = {
    "type": "array",
    "items": {"type": "string", "enum": list(DataType.values)},
    "minItems": 1,
    "uniqueItems": True,
}
_COMMON: Final[dict[str, Any]] = {
    "name": {"type": "string", "maxLength": 200},
    "data_types": _DATA_TYPES,
    "prompt_template": {"type": "string", "description": "Written by the journey (agents/journey)."},
    "schedule_cron": {
        "type": "string",
        "description": "5-field cron in the user's time zone, e.g. '0 */6 * * *'; empty for manual runs only.",
    },
    "enabled": {"type": "boolean", "default": True},
}
# Labels: Gmail labels, Outlook folders, Teams chat topics (apps.connectors.filters).
_FILTER: Final = {
    "labels": {"type": "array", "items": {"type": "string"}},
    "senders": {"type": "array", "items": {"type": "string"}},
    "date_range": {
        "type": "object",
        "properties": {"from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"}},
    },
}


def _cloud_schema(provider: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["provider", "name", "data_types"],
        "properties": {
            "provider": {"type": "string", "const": provider},
            **_COMMON,
            "filter_config": {"type": "object", "properties": _FILTER, "additionalProperties": False},
        },
    }


AGENT_CATALOG: Final[list[dict[str, Any]]] = [
    {
        "type": "local_directory",
        "name": "Local directory",
        "description": "Watches local directories, extracts data from files using AI",
        "config_schema": {
            "type": "object",
            "required": ["name", "device_id", "directory_paths", "data_types"],
            "properties": {
                **_COMMON,
                "device_id": {"type": "string", "maxLength": 128},
                "directory_paths": {"type": "array", "items": {"type": "string"}},
                "file_extensions": {
                    "type": "array",
                    "items": {"type": "string"},
                    "examples": [[".eml", ".txt", ".md"]],
                },
            },
        },
    },
    {
        "type": "gmail",
        "name": "Gmail",
        "description": "Scans Gmail inbox, extracts tasks/notes from emails",
        "config_schema": _cloud_schema("gmail"),
    },
    {
        "type": "teams",
        "name": "Microsoft Teams",
        "description": "Monitors Teams messages, extracts action items",
        "config_schema": _cloud_schema("teams"),
    },
    {
        "type": "outlook",
        "name": "Outlook",
        "description": "Scans Outlook inbox, extracts tasks/notes",
        "config_schema": _cloud_schema("outlook"),
    },
]
