"""Health endpoint: ``{status, version, checks}``; 503 when a dependency is down."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

import adiuva

from .health import service_checks


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {
                "status": serializers.ChoiceField(choices=["ok", "degraded"]),
                "version": serializers.CharField(),
                "checks": serializers.DictField(child=serializers.CharField()),
            },
        ),
        auth=[],
    )
    def get(self, request):
        checks = service_checks()
        healthy = all(state == "ok" for state in checks.values())
        body = {"status": "ok" if healthy else "degraded", "version": adiuva.__version__, "checks": checks}
        return Response(body, status=200 if healthy else 503)
