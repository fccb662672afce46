"""REST endpoints of storage: encrypted records, vector items and backups (thin; services do the work)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils.http import http_date, parse_http_date_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import NotFoundError
from apps.core.pagination import LIST_HEADERS_DESCRIPTION, PagePagination, clamped_limit_parameter, page_parameter

from .backups import backup_delete, backup_headers_parse, backup_upload
from .blob_store import blob_open, blob_read_bytes, blob_storage, blob_storage_is_s3
from .checksums import SHA256_HEX_PATTERN
from .models import VECTOR_DIMENSIONS, Backup
from .multipart import (
    backup_multipart_complete,
    backup_multipart_initiate,
    backup_multipart_part_urls,
    multipart_part_size,
)
from .payloads import blob_decode
from .records import record_create, record_delete, record_update
from .responses import BlobFileResponse
from .selectors import (
    backup_history,
    backup_latest,
    record_get,
    record_list,
    vector_search_by_blob,
    vector_search_by_vector,
)
from .vectors import VectorInput, vector_items_delete, vector_items_upsert, vector_validate

OK_SERIALIZER = inline_serializer("Ok", {"ok": serializers.BooleanField()})
DELETED_SERIALIZER = inline_serializer(
    "VectorDeleteResult", {"ok": serializers.BooleanField(), "deleted": serializers.IntegerField()}
)
VERIFYING_SERIALIZER = inline_serializer(
    "BackupVerifying", {"id": serializers.UUIDField(), "status": serializers.CharField()}
)
BINARY = OpenApiResponse(OpenApiTypes.BINARY, description="The client's ciphertext, byte for byte.")


def _unix(value: dt.datetime) -> int:
    return int(value.timestamp())


@extend_schema_field({"type": "string", "pattern": SHA256_HEX_PATTERN})
class ChecksumField(serializers.CharField):
    """A hex SHA-256; the services check the format (``invalid_checksum``), the schema says it too."""


class BinaryDownloadMixin:
    """Downloads answer whatever the client accepts (``application/octet-stream`` included)."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Encrypted records
# ---------------------------------------------------------------------------------------------


class RecordMetaSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    table = serializers.CharField()
    checksum = ChecksumField()
    size_bytes = serializers.IntegerField()
    created_at = serializers.SerializerMethodField(help_text="Unix time (seconds).")
    updated_at = serializers.SerializerMethodField(help_text="Unix time (seconds).")

    def get_created_at(self, obj: Any) -> int:
        return _unix(obj.created_at)

    def get_updated_at(self, obj: Any) -> int:
        return _unix(obj.updated_at)


LIST_HEADERS = [
    OpenApiParameter("X-Total-Count", int, OpenApiParameter.HEADER, response=[200], description="Matching records."),
    OpenApiParameter("X-Page", int, OpenApiParameter.HEADER, response=[200]),
    OpenApiParameter("X-Per-Page", int, OpenApiParameter.HEADER, response=[200]),
    OpenApiParameter("Link", str, OpenApiParameter.HEADER, response=[200], description='rel="next" / "prev" links.'),
]


class RecordListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        table = serializers.RegexField(r"^[A-Za-z0-9_.-]{1,64}$", help_text="The client's table name.")
        blob = serializers.CharField(help_text="Client ciphertext, standard base64.", trim_whitespace=False)
        checksum = ChecksumField(help_text="Hex SHA-256 of the decoded blob.")

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        created_at = serializers.SerializerMethodField(help_text="Unix time (seconds).")

        def get_created_at(self, obj: Any) -> int:
            return _unix(obj.created_at)

    class FilterSerializer(serializers.Serializer):
        table = serializers.CharField(required=False, max_length=64)

    @extend_schema(
        parameters=[
            OpenApiParameter("table", str),
            page_parameter(),
            clamped_limit_parameter(),
            *LIST_HEADERS,
        ],
        responses={200: OpenApiResponse(RecordMetaSerializer(many=True), description=LIST_HEADERS_DESCRIPTION)},
        operation_id="storage_records_list",
        description="Metadata of the user's records (never the blobs), newest first, as a JSON array (as the "
        "earlier backend answered); the pagination is in the headers; a page past the end is an empty array.",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = PagePagination(past_end_is_empty=True)
        page = paginator.paginate_queryset(record_list(user=request.user, **filters.validated_data), request, view=self)
        # many=True makes a ListSerializer, whose data is a list; the stubs type the plain Serializer.
        return paginator.get_list_response(RecordMetaSerializer(page, many=True).data)  # type: ignore[arg-type]

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        description="Store a client-encrypted record. The SHA-256 checksum is verified before anything is "
        "stored; the plan's cloud_storage_gb quota counts every stored byte.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        record = record_create(
            user=request.user, table=data["table"], blob=blob_decode(value=data["blob"]), checksum=data["checksum"]
        )
        return Response(self.OutputSerializer(record).data, status=status.HTTP_201_CREATED)


class RecordDetailApi(BinaryDownloadMixin, APIView):
    class InputSerializer(serializers.Serializer):
        blob = serializers.CharField(help_text="Client ciphertext, standard base64.", trim_whitespace=False)
        checksum = ChecksumField(help_text="Hex SHA-256 of the decoded blob.")

    @extend_schema(
        responses={(200, "application/octet-stream"): BINARY},
        description="The blob, with X-Checksum.",
        operation_id="storage_record_retrieve",
    )
    def get(self, request: Request, record_id: Any) -> HttpResponse:
        record = record_get(user=request.user, record_id=record_id)
        return HttpResponse(
            blob_read_bytes(key=record.blob_key),
            content_type="application/octet-stream",
            headers={"X-Checksum": record.checksum},
        )

    @extend_schema(request=InputSerializer, responses={200: OK_SERIALIZER})
    def put(self, request: Request, record_id: Any) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        record_update(
            user=request.user,
            record_id=record_id,
            blob=blob_decode(value=data["blob"]),
            checksum=data["checksum"],
        )
        return Response({"ok": True})

    @extend_schema(responses={200: OK_SERIALIZER}, description="Delete the record; its blob goes once committed.")
    def delete(self, request: Request, record_id: Any) -> Response:
        record_delete(user=request.user, record_id=record_id)
        return Response({"ok": True})


# ---------------------------------------------------------------------------------------------
# Vector items
# ---------------------------------------------------------------------------------------------

VECTOR_FIELD_HELP = (
    f"Optional plaintext embedding ({VECTOR_DIMENSIONS} floats) the client chooses to reveal so the server "
    "can rank items by cosine similarity. Without it the item can only be found by an identical blob."
)


class VectorUpsertApi(APIView):
    class InputSerializer(serializers.Serializer):
        class ItemSerializer(serializers.Serializer):
            id = serializers.CharField(max_length=255)
            blob = serializers.CharField(help_text="Client ciphertext, standard base64.", trim_whitespace=False)
            checksum = ChecksumField(help_text="Hex SHA-256 of the decoded blob.")
            vector = serializers.ListField(
                child=serializers.FloatField(), required=False, allow_null=True, help_text=VECTOR_FIELD_HELP
            )

        vectors = serializers.ListField(child=ItemSerializer(), min_length=1, max_length=500)

    @extend_schema(
        request=InputSerializer,
        responses={200: inline_serializer("VectorUpsertResult", {"upserted": serializers.IntegerField()})},
        description="Insert or replace the user's vector items by client id. Blobs are opaque ciphertext: the "
        "server verifies each SHA-256 checksum and stores them, and never decrypts. An item's optional "
        "`vector` is stored in a pgvector column for cosine search.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = [
            VectorInput(
                item_id=item["id"],
                blob=blob_decode(value=item["blob"], field=f"vectors.{index}.blob"),
                checksum=item["checksum"],
                vector=item.get("vector"),
            )
            for index, item in enumerate(serializer.validated_data["vectors"])
        ]
        return Response({"upserted": vector_items_upsert(user=request.user, items=items)})


class VectorSearchApi(APIView):
    class InputSerializer(serializers.Serializer):
        query_blob = serializers.CharField(
            required=False,
            trim_whitespace=False,
            help_text="Base64 ciphertext. Encrypted blobs carry no meaning the server can compare, so a "
            "blob-only search returns the items whose blob is byte-for-byte identical (score 1.0).",
        )
        query_vector = serializers.ListField(
            child=serializers.FloatField(),
            required=False,
            help_text=f"{VECTOR_DIMENSIONS} floats. When given, items that have a `vector` are ranked by "
            "cosine similarity (score = 1 - cosine distance) and `query_blob` is ignored.",
        )
        top_k = serializers.IntegerField(min_value=1, max_value=100, default=10)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "query_blob" not in attrs and "query_vector" not in attrs:
                raise serializers.ValidationError({"query_vector": ["Give query_vector or query_blob."]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        class ResultSerializer(serializers.Serializer):
            id = serializers.CharField()
            score = serializers.FloatField()
            blob = serializers.CharField(help_text="Base64 ciphertext.")

        results = ResultSerializer(many=True)

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer},
        description="Search the user's vector items. The server cannot read encrypted blobs, so it cannot "
        "do semantic search on them: with `query_vector` it ranks the items that were stored with a "
        "client-supplied `vector` by cosine similarity (pgvector, top_k, only this user's items); with only "
        "`query_blob` it returns items whose blob is identical to it, each with score 1.0.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "query_vector" in data:
            vector = vector_validate(vector=data["query_vector"], field="query_vector")
            assert vector is not None  # the field is not nullable
            hits = vector_search_by_vector(user=request.user, query_vector=vector, top_k=data["top_k"])
        else:
            blob = blob_decode(value=data["query_blob"], field="query_blob")
            hits = vector_search_by_blob(
                user=request.user, checksum=hashlib.sha256(blob).hexdigest(), blob=blob, top_k=data["top_k"]
            )
        results = [
            {"id": item.item_id, "score": round(score, 6), "blob": base64.b64encode(bytes(item.blob)).decode()}
            for item, score in hits
        ]
        return Response(self.OutputSerializer({"results": results}).data)


class VectorDeleteApi(APIView):
    delete_reads_body = True  # the ids come in the body (the schema cannot show a DELETE body)

    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(child=serializers.CharField(max_length=255), min_length=1, max_length=1000)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "VectorDeleteResult", {"ok": serializers.BooleanField(), "deleted": serializers.IntegerField()}
            )
        },
        description="Delete the user's vector items with these client ids (unknown ids are ignored).",
    )
    def delete(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deleted = vector_items_delete(user=request.user, item_ids=serializer.validated_data["ids"])
        return Response({"ok": True, "deleted": deleted})


# ---------------------------------------------------------------------------------------------
# Backups
# ---------------------------------------------------------------------------------------------


class BackupMetadataSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    version = serializers.IntegerField()
    timestamp = serializers.IntegerField(help_text="The client's X-Backup-Timestamp.")
    checksum = ChecksumField()
    size_bytes = serializers.IntegerField()
    chunk_count = serializers.IntegerField(help_text="The parts it was uploaded in (1 for a single PUT).")
    created_at = serializers.SerializerMethodField(help_text="Unix time (seconds) the backup became complete.")

    def get_created_at(self, obj: Backup) -> int | None:
        return _unix(obj.completed_at or obj.created_at)


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


class BackupMultipartInitiateApi(APIView):
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=0)
        timestamp = serializers.IntegerField(min_value=0)
        checksum = ChecksumField(help_text="Hex SHA-256 of the whole backup.")
        size_bytes = serializers.IntegerField(min_value=1, help_text="Exact size of the whole backup.")

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
        part_numbers = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000)

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
            part_number = serializers.IntegerField(min_value=1)
            etag = serializers.CharField(max_length=256)

        parts = serializers.ListField(child=PartSerializer(), min_length=1, max_length=10_000)

    @extend_schema(
        request=InputSerializer,
        responses={
            202: inline_serializer(
                "BackupVerifying", {"id": serializers.UUIDField(), "status": serializers.CharField()}
            )
        },
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
