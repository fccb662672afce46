"""What the storage endpoints share: the ``Ok`` answer, the binary download answer, the checksum
field and unix timestamps."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from ..checksums import SHA256_HEX_PATTERN

OK_SERIALIZER = inline_serializer("Ok", {"ok": serializers.BooleanField()})
BINARY = OpenApiResponse(OpenApiTypes.BINARY, description="The client's ciphertext, byte for byte.")


def unix_seconds(value: dt.datetime) -> int:
    return int(value.timestamp())


@extend_schema_field({"type": "string", "pattern": SHA256_HEX_PATTERN})
class ChecksumField(serializers.CharField):
    """A hex SHA-256; the services check the format (``invalid_checksum``), the schema says it too."""


class BinaryDownloadMixin:
    """Downloads answer whatever the client accepts (``application/octet-stream`` included)."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)  # type: ignore[misc]
