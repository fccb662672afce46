"""REST doors of the devices app: the user's devices, and forgetting one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import device_listing
from .services import device_forget


class DeviceListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        device_id = serializers.CharField()
        name = serializers.CharField(allow_null=True, help_text="The name the app sent in device_hello, if any.")
        platform = serializers.CharField(allow_null=True)
        online = serializers.BooleanField(help_text="A live socket holds the device now.")
        last_seen_at = serializers.DateTimeField()
        bound_agents = serializers.ListField(
            child=serializers.CharField(), help_text="Ids of the local agents that read folders on this device."
        )

        def to_representation(self, instance: Any) -> dict[str, Any]:
            data = super().to_representation(instance)
            data["name"] = data["name"] or None
            data["platform"] = data["platform"] or None
            return data

    @extend_schema(
        responses={200: OutputSerializer(many=True)},
        operation_id="devices_list",
        description="The user's devices, most recently seen first, as a JSON array.",
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(device_listing(user_id=request.user.pk), many=True).data)


class DeviceForgetApi(APIView):
    @extend_schema(
        request=None,
        responses={204: None},
        operation_id="devices_forget",
        description="Forget a device: its socket is closed (code 4406) and the local agents bound to it "
        "are unbound and paused. A later device_hello with the same id registers it again.",
    )
    def delete(self, request: Request, device_id: str) -> Response:
        device_forget(user_id=request.user.pk, device_id=device_id)
        return Response(status=204)
