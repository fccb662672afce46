"""REST endpoints of multipart backups: initiate, part URLs and complete (thin; services do the
work)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..backups import backup_headers_parse
from ..multipart import (
    MULTIPART_MAX_PARTS,
    MULTIPART_MAX_SIZE,
    backup_multipart_complete,
    backup_multipart_initiate,
    backup_multipart_part_urls,
    multipart_part_size,
)
from .common import ChecksumField

VERIFYING_SERIALIZER = inline_serializer(
    "BackupVerifying", {"id": serializers.UUIDField(), "status": serializers.CharField()}
)


class BackupMultipartInitiateApi(APIView):
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=0)
        timestamp = serializers.IntegerField(min_value=0)
        checksum = ChecksumField(help_text="Hex SHA-256 of the whole backup.")
        size_bytes = serializers.IntegerField(
            min_value=1, max_value=MULTIPART_MAX_SIZE, help_text="Exact size of the whole backup (at most 5 TiB)."
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        part_size = serializers.IntegerField()
        part_count = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        description="S3 only: start a presigned multipart upload so a multi-GB backup goes straight to S3. "
        "Upload every part (of `part_size` bytes, the last one shorter) to the URLs from `…/parts`, then "
        "`…/complete`. Uploads left open are aborted after BACKUP_MULTIPART_STALE_HOURS.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        headers = backup_headers_parse(
            version=str(data["version"]), timestamp=str(data["timestamp"]), checksum=data["checksum"]
        )
        backup = backup_multipart_initiate(user=request.user, headers=headers, size_bytes=data["size_bytes"])
        part_size = multipart_part_size(size_bytes=backup.size_bytes)
        body = {"id": backup.id, "part_size": part_size, "part_count": -(-backup.size_bytes // part_size)}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class BackupMultipartPartsApi(APIView):
    class InputSerializer(serializers.Serializer):
        part_numbers = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MULTIPART_MAX_PARTS), min_length=1, max_length=1000
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "BackupPartUrls",
                {
                    "urls": inline_serializer(
                        "BackupPartUrl",
                        {"part_number": serializers.IntegerField(), "url": serializers.URLField()},
                        many=True,
                    )
                },
            )
        },
        description="Presigned PUT URLs for these part numbers; keep each part's ETag for `complete`.",
    )
    def post(self, request: Request, backup_id: Any) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        urls = backup_multipart_part_urls(
            user=request.user, backup_id=backup_id, part_numbers=serializer.validated_data["part_numbers"]
        )
        return Response({"urls": [{"part_number": number, "url": url} for number, url in urls.items()]})


class BackupMultipartCompleteApi(APIView):
    class InputSerializer(serializers.Serializer):
        class PartSerializer(serializers.Serializer):
            part_number = serializers.IntegerField(min_value=1, max_value=MULTIPART_MAX_PARTS)
            etag = serializers.CharField(max_length=256)

        parts = serializers.ListField(child=PartSerializer(), min_length=1, max_length=10_000)

    @extend_schema(
        request=InputSerializer,
        responses={202: VERIFYING_SERIALIZER},
        description="Assemble the parts. The size is checked at once; a worker then streams the object to "
        "verify its SHA-256, and only then does it become the latest backup (see `GET backup/history`).",
    )
    def post(self, request: Request, backup_id: Any) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        backup = backup_multipart_complete(
            user=request.user, backup_id=backup_id, parts=serializer.validated_data["parts"]
        )
        return Response({"id": str(backup.id), "status": backup.status}, status=status.HTTP_202_ACCEPTED)
