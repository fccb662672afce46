"""The user's own view of their memory: list per kind, export everything, delete for real."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpResponseBase
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.requests import AuthenticatedRequest
from apps.core.loop_views import LoopApiView
from apps.core.pagination import PagePagination, clamped_limit_parameter, page_parameter
from apps.core.rendered_responses import RenderedInViewMixin, json_rendered

from .models import MemoryKind
from .selectors import (
    amemory_counts,
    amemory_item_get,
    amemory_item_view,
    amemory_page,
    memory_export,
    memory_kind_count,
)
from .services import (
    CORE_KEY_MAX_LENGTH,
    CORE_VALUE_MAX_LENGTH,
    core_memory_set,
    memory_delete_all,
    memory_item_delete,
    memory_kind_delete,
)


class _ItemBase(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CoreItemOutputSerializer(_ItemBase):
    key = serializers.CharField()
    value = serializers.CharField()


class AssociativeItemOutputSerializer(_ItemBase):
    content = serializers.CharField()
    entity_type = serializers.CharField(allow_null=True)
    entity_id = serializers.CharField(allow_null=True)


class EpisodicItemOutputSerializer(_ItemBase):
    session_id = serializers.CharField()
    summary = serializers.CharField(allow_null=True, help_text="Null while the summary is being written.")
    pending = serializers.BooleanField(help_text="The turn is stored; its summary is not written yet.")


class ProactiveItemOutputSerializer(_ItemBase):
    description = serializers.CharField()
    confidence = serializers.FloatField()
    active = serializers.BooleanField(help_text="Used by the assistant (confidence above 0.6).")


OUTPUT_SERIALIZERS: dict[MemoryKind, type[serializers.Serializer]] = {
    MemoryKind.CORE: CoreItemOutputSerializer,
    MemoryKind.ASSOCIATIVE: AssociativeItemOutputSerializer,
    MemoryKind.EPISODIC: EpisodicItemOutputSerializer,
    MemoryKind.PROACTIVE: ProactiveItemOutputSerializer,
}


# The kinds whose items hold no float (the proactive ones carry their confidence): their pages are
# written by ``json_rendered``, the same bytes at a fraction of JSONRenderer's CPU.
_FLOATLESS_KINDS = frozenset({MemoryKind.CORE, MemoryKind.ASSOCIATIVE, MemoryKind.EPISODIC})


class DeletedOutputSerializer(serializers.Serializer):
    deleted = serializers.IntegerField(help_text="How many rows were deleted.")


_DATE_FIELD = serializers.DateTimeField()


def _iso8601(value: dt.datetime | str, zone: dt.tzinfo) -> str:
    """What ``serializers.DateTimeField`` answers for ``value`` in the current time zone ``zone``;
    ``value`` is a datetime or a page's ``UtcText`` (``YYYY-MM-DDTHH:MM:SS.ffffff``, in UTC)."""
    if isinstance(value, str):
        if zone is dt.UTC or getattr(zone, "key", None) == "UTC":
            # isoformat() leaves out a zero fraction; the text always has six digits.
            return (value[:-7] if value.endswith(".000000") else value) + "Z"
        value = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    elif timezone.is_naive(value):
        return _DATE_FIELD.to_representation(value)
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _listed_items(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the kind's output serializer (``OUTPUT_SERIALIZERS``, which the export still uses) answers
    for each item (the same keys in the same order, the same values), built from ``memory_item_view``'s
    views in place: the serializer asked for the current time zone (an asgiref ``Local``) at every date
    of every item and cost more than the page's decryption. The dates are the only fields it changed."""
    zone = timezone.get_current_timezone()
    for view in views:
        view["created_at"] = _iso8601(view["created_at"], zone)
        view["updated_at"] = _iso8601(view["updated_at"], zone)
    return views


class MemoryCountsOutputSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())


class MemoryApi(RenderedInViewMixin, LoopApiView):
    """Counts of the user's memory per kind; DELETE forgets all of it."""

    @extend_schema(operation_id="memory_counts", responses={200: MemoryCountsOutputSerializer})
    async def get(self, request: AuthenticatedRequest) -> Response:
        # On the loop (apps.core.loop_views). The counts are ints already: the serializer describes the
        # answer, it has nothing to convert.
        return Response({"counts": await amemory_counts(user_id=request.user.id)})

    @extend_schema(operation_id="memory_delete_all", responses={200: DeletedOutputSerializer})
    def delete(self, request: AuthenticatedRequest) -> Response:
        return Response({"deleted": memory_delete_all(user_id=request.user.id)})


class CoreMemorySetInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=CORE_KEY_MAX_LENGTH)
    value = serializers.CharField(max_length=CORE_VALUE_MAX_LENGTH)


class MemoryKindApi(RenderedInViewMixin, LoopApiView):
    """List one kind of memory (paginated, decrypted); DELETE forgets all of that kind.

    POST on ``core`` sets a preference (``{key, value}``); the other kinds are written by the
    assistant, not by hand.
    """

    @extend_schema(
        operation_id="memory_kind_list",
        parameters=[page_parameter(), clamped_limit_parameter()],
        responses={200: OpenApiTypes.OBJECT},
    )
    async def get(self, request: AuthenticatedRequest, kind: MemoryKind) -> HttpResponseBase:
        # On the loop (apps.core.loop_views): the session query and the page are awaited there.
        user_id = request.user.id
        paginator = PagePagination()
        views = await paginator.apaginate_rows(
            request,
            fetch=lambda offset, limit: amemory_page(user_id=user_id, kind=kind, offset=offset, limit=limit),
            count=lambda: sync_to_async(memory_kind_count)(user_id=user_id, kind=kind),  # a page past the end only
        )
        body = paginator.get_paginated_data(_listed_items(views))
        return json_rendered(data=body) if kind in _FLOATLESS_KINDS else Response(body)

    @extend_schema(operation_id="memory_core_set", request=CoreMemorySetInputSerializer, responses={204: None})
    def post(self, request: AuthenticatedRequest, kind: MemoryKind) -> Response:
        if kind != MemoryKind.CORE:
            raise exceptions.MethodNotAllowed("POST", detail=f"Only core memory can be set by hand, not {kind}.")
        serializer = CoreMemorySetInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        core_memory_set(user_id=request.user.id, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="memory_kind_delete", responses={200: DeletedOutputSerializer})
    def delete(self, request: AuthenticatedRequest, kind: MemoryKind) -> Response:
        return Response({"deleted": memory_kind_delete(user_id=request.user.id, kind=kind)})


class MemoryItemApi(RenderedInViewMixin, LoopApiView):
    """One item of the user's memory; another user's id is a 404."""

    @extend_schema(operation_id="memory_item_get", responses={200: OpenApiTypes.OBJECT})
    async def get(self, request: AuthenticatedRequest, kind: MemoryKind, item_id: uuid.UUID) -> Response:
        # On the loop (apps.core.loop_views).
        item = await amemory_item_get(user_id=request.user.id, kind=kind, item_id=item_id)
        view = await amemory_item_view(user_id=request.user.id, kind=kind, item=item)
        return Response(_listed_items([view])[0])

    @extend_schema(operation_id="memory_item_delete", responses={204: None})
    def delete(self, request: AuthenticatedRequest, kind: MemoryKind, item_id: uuid.UUID) -> Response:
        memory_item_delete(user_id=request.user.id, kind=kind, item_id=item_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemoryExportParamsSerializer(serializers.Serializer):
    include_embeddings = serializers.BooleanField(default=False)


class MemoryExportApi(APIView):
    """All of the user's memory, decrypted, as one JSON document."""

    @extend_schema(
        operation_id="memory_export",
        parameters=[OpenApiParameter("include_embeddings", bool, description="Add the 1536-dim vectors.")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        params = MemoryExportParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        export = memory_export(user_id=request.user.id, with_embeddings=params.validated_data["include_embeddings"])
        body = {
            kind: [OUTPUT_SERIALIZERS[MemoryKind(kind)](item).data | _vector(item) for item in items]
            for kind, items in export.items()
        }
        return Response(body, headers={"Content-Disposition": 'attachment; filename="adiuva-memory.json"'})


def _vector(item: dict[str, Any]) -> dict[str, Any]:
    return {"embedding": item["embedding"]} if "embedding" in item else {}
