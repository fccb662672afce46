"""REST door of the assistant: ``POST chat`` (Home agent, not streamed) and ``POST storage/vectors/embed``."""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.request_context import current_request_id
from apps.core.serializer_fields import StrictCharField

from .embeddings import text_embed
from .services import chat_reply, message_validate


class ChatApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502

    class InputSerializer(serializers.Serializer):
        class ContextSerializer(serializers.Serializer):
            user_profile = serializers.DictField(required=False, default=dict)
            relevant_documents = serializers.ListField(
                child=serializers.CharField(trim_whitespace=False, allow_blank=True), required=False, default=list
            )
            recent_tasks = serializers.ListField(child=serializers.DictField(), required=False, default=list)
            conversation_history = serializers.ListField(required=False, allow_null=True, default=None)

        message = serializers.CharField(trim_whitespace=False, allow_blank=True)
        # The client's field name. DRF pops declared fields off the class, so Serializer.context still works.
        context = ContextSerializer(required=False, default=dict)  # type: ignore[assignment]

        def validate_message(self, value: str) -> str:
            return message_validate(value)

    class OutputSerializer(serializers.Serializer):
        response = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = dict(data.validated_data["context"])
        history = context.pop("conversation_history", None)
        answer = async_to_sync(chat_reply)(
            user_id=request.user.id,
            message=data.validated_data["message"],
            history=history if isinstance(history, list) else None,
            request_id=current_request_id() or uuid.uuid4().hex,
            context=context,
        )
        return Response(self.OutputSerializer({"response": answer}).data)


class VectorEmbedApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502

    class InputSerializer(serializers.Serializer):
        text = StrictCharField(trim_whitespace=False)

        def validate_text(self, value: str) -> str:
            limit = settings.ASSISTANT_MAX_MESSAGE_CHARS * 4
            if len(value) > limit:
                raise serializers.ValidationError(f"At most {limit} characters.")
            return value

    class OutputSerializer(serializers.Serializer):
        vector = serializers.ListField(child=serializers.FloatField())

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        vector = async_to_sync(text_embed)(text=data.validated_data["text"])
        return Response(self.OutputSerializer({"vector": vector}).data)
