"""REST endpoints of backups: upload, download, metadata, history and delete (thin; services do the
work)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponseNotModified, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils.http import http_date, parse_http_date_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import NotFoundError

from ..backups import backup_delete, backup_headers_parse, backup_upload
from ..blob_store import blob_open, blob_storage, blob_storage_is_s3
from ..checksums import SHA256_HEX_PATTERN
from ..models import Backup
from ..responses import BlobFileResponse
from ..selectors import backup_history, backup_latest
from .common import BINARY, OK_SERIALIZER, BinaryDownloadMixin, ChecksumField, unix_seconds


class BackupMetadataSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    version = serializers.IntegerField()
    timestamp = serializers.IntegerField(help_text="The client's X-Backup-Timestamp.")
    checksum = ChecksumField()
    size_bytes = serializers.IntegerField()
    chunk_count = serializers.IntegerField(help_text="The parts it was uploaded in (1 for a single PUT).")
    created_at = serializers.SerializerMethodField(help_text="Unix time (seconds) the backup became complete.")

    def get_created_at(self, obj: Backup) -> int | None:
        return unix_seconds(obj.completed_at or obj.created_at)


BACKUP_HEADERS = [
    OpenApiParameter("X-Backup-Version", int, OpenApiParameter.HEADER, required=True),
    OpenApiParameter("X-Backup-Timestamp", int, OpenApiParameter.HEADER, required=True),
    OpenApiParameter(
        "X-Backup-Checksum",
        {"type": "string", "pattern": SHA256_HEX_PATTERN},
        OpenApiParameter.HEADER,
        required=True,
        description="Hex SHA-256.",
    ),
]


def _backup_headers(backup: Backup) -> dict[str, str]:
    return {
        "X-Checksum": backup.checksum,
        "X-Backup-Id": str(backup.id),
        "X-Backup-Version": str(backup.version),
        "X-Backup-Timestamp": str(backup.timestamp),
        "X-Backup-Checksum": backup.checksum,
        "Last-Modified": http_date((backup.completed_at or backup.created_at).timestamp()),
    }


class BackupApi(BinaryDownloadMixin, APIView):
    @extend_schema(
        parameters=[OpenApiParameter("If-Modified-Since", str, OpenApiParameter.HEADER)],
        responses={
            (200, "application/octet-stream"): BINARY,
            302: OpenApiResponse(description="On S3, large backups redirect to a presigned download URL."),
            304: OpenApiResponse(description="Not modified since If-Modified-Since."),
        },
        description="The latest complete, verified backup. With `Accept: application/json` on S3, a large "
        "backup answers `{download_url}` instead of redirecting.",
    )
    def get(self, request: Request) -> HttpResponseBase:
        latest = backup_latest(user=request.user)
        if latest is None:
            raise NotFoundError("Backup")
        headers = _backup_headers(latest)
        since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
        modified = int((latest.completed_at or latest.created_at).timestamp())
        if since is not None and modified <= since:
            not_modified = HttpResponseNotModified()
            for name, value in headers.items():
                not_modified[name] = value
            return not_modified
        if blob_storage_is_s3() and latest.size_bytes >= settings.BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES:
            url = blob_storage().url(latest.blob_key)
            if "application/json" in request.headers.get("Accept", ""):
                return Response({"download_url": url, **BackupMetadataSerializer(latest).data}, headers=headers)
            return HttpResponseRedirect(url, headers=headers)
        response = BlobFileResponse(
            blob_open(key=latest.blob_key),
            content_type="application/octet-stream",
            as_attachment=True,
            filename=f"backup-{latest.version}-{latest.timestamp}.bin",
        )
        response["Content-Length"] = str(latest.size_bytes)
        for name, value in headers.items():
            response[name] = value
        return response

    @extend_schema(
        parameters=BACKUP_HEADERS,
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={201: BackupMetadataSerializer, 413: OpenApiResponse(description="Over the backup quota.")},
        description="Upload a backup as the raw request body. It is streamed to storage with bounded memory "
        "and hashed on the way; it becomes the latest backup only once complete and matching "
        "X-Backup-Checksum. A failed or interrupted upload leaves the previous latest as it was. A body over "
        "the remaining backup quota is refused with 413 before it is read (Content-Length) or as soon as "
        "the streamed count passes it. Under ASGI this request is served by the streaming route in "
        "apps/storage/backup_stream.py, in front of Django, with the same contract.",
    )
    def put(self, request: Request) -> Response:
        headers = backup_headers_parse(
            version=request.headers.get("X-Backup-Version"),
            timestamp=request.headers.get("X-Backup-Timestamp"),
            checksum=request.headers.get("X-Backup-Checksum"),
        )
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        content_length = int(raw_length) if raw_length.isdigit() else None
        # Read the Django request as a stream: request.body/DRF parsing would load it whole and
        # trip DATA_UPLOAD_MAX_MEMORY_SIZE.
        backup = backup_upload(
            user=request.user, headers=headers, read=request._request.read, content_length=content_length
        )
        return Response({"ok": True, **BackupMetadataSerializer(backup).data}, status=status.HTTP_201_CREATED)


class BackupHistoryApi(APIView):
    @extend_schema(responses={200: BackupMetadataSerializer(many=True)}, description="Complete backups, newest first.")
    def get(self, request: Request) -> Response:
        return Response(BackupMetadataSerializer(backup_history(user=request.user), many=True).data)


class BackupDeleteApi(APIView):
    @extend_schema(responses={200: OK_SERIALIZER}, description="Delete one backup (or abort its open upload).")
    def delete(self, request: Request, backup_id: Any) -> Response:
        backup_delete(user=request.user, backup_id=backup_id)
        return Response({"ok": True})
