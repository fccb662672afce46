"""Serializer fields whose OpenAPI schema says exactly what their validation accepts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "string"})
class StrictCharField(serializers.CharField):
    """A string and nothing else: DRF's CharField turns ``0`` or ``true`` into text, the schema says string."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
