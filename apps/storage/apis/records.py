"""REST endpoints of encrypted records: list, create, read, replace and delete (thin; services do
the work)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpResponse, HttpResponseBase
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.loop_views import LoopApiView
from apps.core.pagination import LIST_HEADERS_DESCRIPTION, PagePagination, clamped_limit_parameter, page_parameter
from apps.core.rendered_responses import RenderedInViewMixin, json_rendered

from ..blob_store import ablob_read_bytes
from ..payloads import blob_decode
from ..records import record_create, record_delete, record_update
from ..selectors import arecord_get, arecord_page, record_count
from .common import BINARY, OK_SERIALIZER, BinaryDownloadMixin, ChecksumField, unix_seconds


class RecordMetaSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    table = serializers.CharField()
    checksum = ChecksumField()
    size_bytes = serializers.IntegerField()
    created_at = serializers.SerializerMethodField(help_text="Unix time (seconds).")
    updated_at = serializers.SerializerMethodField(help_text="Unix time (seconds).")

    def get_created_at(self, obj: Any) -> int:
        return unix_seconds(obj.created_at)

    def get_updated_at(self, obj: Any) -> int:
        return unix_seconds(obj.updated_at)


def _record_meta(row: tuple[Any, ...]) -> dict[str, Any]:
    """What ``RecordMetaSerializer`` answers, built from a row of ``record_page`` (a serializer per
    page cost more than the page's query; the row's dates are Unix seconds already)."""
    record_id, table, checksum, size_bytes, created_at, updated_at = row
    return {
        "id": str(record_id),
        "table": table,
        "checksum": checksum,
        "size_bytes": size_bytes,
        "created_at": created_at,
        "updated_at": updated_at,
    }


LIST_HEADERS = [
    OpenApiParameter("X-Total-Count", int, OpenApiParameter.HEADER, response=[200], description="Matching records."),
    OpenApiParameter("X-Page", int, OpenApiParameter.HEADER, response=[200]),
    OpenApiParameter("X-Per-Page", int, OpenApiParameter.HEADER, response=[200]),
    OpenApiParameter("Link", str, OpenApiParameter.HEADER, response=[200], description='rel="next" / "prev" links.'),
]


class RecordListCreateApi(RenderedInViewMixin, LoopApiView):
    class InputSerializer(serializers.Serializer):
        table = serializers.RegexField(r"^[A-Za-z0-9_.-]{1,64}$", help_text="The client's table name.")
        blob = serializers.CharField(help_text="Client ciphertext, standard base64.", trim_whitespace=False)
        checksum = ChecksumField(help_text="Hex SHA-256 of the decoded blob.")

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        created_at = serializers.SerializerMethodField(help_text="Unix time (seconds).")

        def get_created_at(self, obj: Any) -> int:
            return unix_seconds(obj.created_at)

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
    async def get(self, request: Request) -> HttpResponseBase:
        # On the loop (apps.core.loop_views): the session query and the page are awaited there.
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        table = filters.validated_data.get("table")
        paginator = PagePagination(past_end_is_empty=True)
        page = await paginator.apaginate_rows(
            request,
            fetch=lambda offset, limit: arecord_page(user=request.user, table=table, offset=offset, limit=limit),
            count=lambda: sync_to_async(record_count)(user=request.user, table=table),  # a page past the end only
        )
        # Text and ints only: written by orjson, JSONRenderer's bytes at a fraction of its CPU.
        return json_rendered(data=[_record_meta(row) for row in page], headers=paginator.get_list_headers())

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


class RecordDetailApi(RenderedInViewMixin, BinaryDownloadMixin, LoopApiView):
    class InputSerializer(serializers.Serializer):
        blob = serializers.CharField(help_text="Client ciphertext, standard base64.", trim_whitespace=False)
        checksum = ChecksumField(help_text="Hex SHA-256 of the decoded blob.")

    @extend_schema(
        responses={(200, "application/octet-stream"): BINARY},
        description="The blob, with X-Checksum.",
        operation_id="storage_record_retrieve",
    )
    async def get(self, request: Request, record_id: Any) -> HttpResponse:
        # On the loop (apps.core.loop_views); a small blob on local disk is read there too, S3 in the thread.
        record = await arecord_get(user=request.user, record_id=record_id)
        return HttpResponse(
            await ablob_read_bytes(key=record.blob_key, size=record.size_bytes),
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
