"""REST endpoints of vector items: upsert, search and delete (thin; services do the work)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import VECTOR_DIMENSIONS
from ..payloads import blob_decode
from ..selectors import vector_search_by_blob, vector_search_by_vector
from ..vectors import VectorInput, vector_items_delete, vector_items_upsert, vector_validate
from .common import ChecksumField

DELETED_SERIALIZER = inline_serializer(
    "VectorDeleteResult", {"ok": serializers.BooleanField(), "deleted": serializers.IntegerField()}
)


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
        responses={200: DELETED_SERIALIZER},
        description="Delete the user's vector items with these client ids (unknown ids are ignored).",
    )
    def delete(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deleted = vector_items_delete(user=request.user, item_ids=serializer.validated_data["ids"])
        return Response({"ok": True, "deleted": deleted})
