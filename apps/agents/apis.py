"""REST endpoints of agents: catalog, local and cloud configs, runs, manual runs, the journey (thin)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.requests import AuthenticatedRequest
from apps.connectors.providers import Provider
from apps.core.pagination import PageQuerySerializer, limit_parameter, page_parameter, page_slice

from .catalog import AGENT_CATALOG
from .configs import (
    cloud_agent_create,
    cloud_agent_delete,
    cloud_agent_update,
    local_agent_create,
    local_agent_delete,
    local_agent_update,
)
from .journey import journey_message, journey_start
from .models import AgentType, DataType, RunTrigger
from .runs import run_start
from .selectors import agent_get, cloud_agent_list, local_agent_list, run_count, run_list

OK_SERIALIZER = inline_serializer("AgentsOk", {"ok": serializers.BooleanField()})
MAX_PATHS = 50
MAX_PATH_CHARS = 1024
MAX_PROMPT_CHARS = 20_000


class DataTypesField(serializers.ListField):
    child = serializers.ChoiceField(choices=DataType.values)

    def __init__(self, **kwargs: Any) -> None:
        # min_length (not only allow_empty=False) so that the schema says minItems: 1 too
        super().__init__(allow_empty=False, min_length=1, max_length=len(DataType.values) * 2, **kwargs)


class CatalogApi(APIView):
    class OutputSerializer(serializers.Serializer):
        type = serializers.CharField()
        name = serializers.CharField()
        description = serializers.CharField()
        config_schema = serializers.DictField()

    @extend_schema(responses={200: OutputSerializer(many=True)}, operation_id="agents_catalog")
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(AGENT_CATALOG, many=True).data)


class AgentConfigOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    user_id = serializers.UUIDField()
    name = serializers.CharField()
    data_types = serializers.ListField(child=serializers.CharField())
    prompt_template = serializers.CharField()
    schedule_cron = serializers.CharField()
    enabled = serializers.BooleanField()
    paused_reason = serializers.SerializerMethodField(
        help_text="Why the server switched it off, or null: `tier_limit` (over the plan's enabled agents; it "
        "resumes with the plan) or `device_forgotten` (a local agent whose device was removed). Cleared when "
        "the user switches it on."
    )
    last_run_at = serializers.DateTimeField(allow_null=True)
    next_run_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_paused_reason(self, obj: Any) -> str | None:
        return getattr(obj, "paused_reason", "") or None


class LocalAgentOutputSerializer(AgentConfigOutputSerializer):
    device_id = serializers.CharField()
    directory_paths = serializers.ListField(child=serializers.CharField())
    file_extensions = serializers.ListField(child=serializers.CharField())
    waiting_for_device_since = serializers.DateTimeField(
        allow_null=True, help_text="A scheduled run is owed since then; it starts when the device connects."
    )


class CloudAgentOutputSerializer(AgentConfigOutputSerializer):
    provider = serializers.ChoiceField(choices=Provider.choices)
    filter_config = serializers.DictField()


class LocalAgentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    device_id = serializers.CharField(max_length=128)
    directory_paths = serializers.ListField(
        child=serializers.CharField(max_length=MAX_PATH_CHARS), max_length=MAX_PATHS, default=list
    )
    data_types = DataTypesField()
    prompt_template = serializers.CharField(max_length=MAX_PROMPT_CHARS, allow_blank=True, default="")
    file_extensions = serializers.ListField(
        child=serializers.RegexField(r"^\.?[A-Za-z0-9][A-Za-z0-9_+.-]{0,30}$", max_length=32),
        max_length=MAX_PATHS,
        default=list,
    )
    schedule_cron = serializers.CharField(max_length=120, allow_blank=True, default="")
    enabled = serializers.BooleanField(default=True)


class CloudAgentInputSerializer(serializers.Serializer):
    provider = serializers.ChoiceField(choices=Provider.values)
    name = serializers.CharField(max_length=200)
    data_types = DataTypesField()
    prompt_template = serializers.CharField(max_length=MAX_PROMPT_CHARS, allow_blank=True, default="")
    schedule_cron = serializers.CharField(max_length=120, allow_blank=True, default="")
    filter_config = serializers.DictField(default=dict)
    enabled = serializers.BooleanField(default=True)
    # The earlier backend stored the OAuth token on the config; tokens now live in connector
    # grants (oauth/{provider}/…). Accepted so existing clients keep working, never stored.
    oauth_token_encrypted = serializers.CharField(required=False, allow_blank=True, allow_null=True, write_only=True)


def _validated(serializer_class: type[serializers.Serializer], request: Request, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    data.pop("oauth_token_encrypted", None)
    return data


class LocalAgentListCreateApi(APIView):
    @extend_schema(responses={200: LocalAgentOutputSerializer(many=True)}, operation_id="agents_local_list")
    def get(self, request: Request) -> Response:
        return Response(LocalAgentOutputSerializer(local_agent_list(user=request.user), many=True).data)

    @extend_schema(
        request=LocalAgentInputSerializer,
        responses={201: LocalAgentOutputSerializer},
        operation_id="agents_local_create",
        description="Create a local directory agent. Limits: 'agents' configs and 'batch_active' enabled ones.",
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        config = local_agent_create(user=request.user, **_validated(LocalAgentInputSerializer, request))
        return Response(LocalAgentOutputSerializer(config).data, status=status.HTTP_201_CREATED)


class LocalAgentDetailApi(APIView):
    @extend_schema(
        request=LocalAgentInputSerializer,
        responses={200: LocalAgentOutputSerializer},
        operation_id="agents_local_update",
        description="Update the fields sent (others keep their values).",
    )
    def put(self, request: AuthenticatedRequest, agent_id: Any) -> Response:
        data = _validated(LocalAgentInputSerializer, request, partial=True)
        config = local_agent_update(user=request.user, agent_id=agent_id, **data)
        return Response(LocalAgentOutputSerializer(config).data)

    @extend_schema(responses={200: OK_SERIALIZER}, operation_id="agents_local_delete")
    def delete(self, request: AuthenticatedRequest, agent_id: Any) -> Response:
        local_agent_delete(user=request.user, agent_id=agent_id)
        return Response({"ok": True})


class CloudAgentListCreateApi(APIView):
    @extend_schema(responses={200: CloudAgentOutputSerializer(many=True)}, operation_id="agents_cloud_list")
    def get(self, request: Request) -> Response:
        return Response(CloudAgentOutputSerializer(cloud_agent_list(user=request.user), many=True).data)

    @extend_schema(
        request=CloudAgentInputSerializer,
        responses={201: CloudAgentOutputSerializer},
        operation_id="agents_cloud_create",
        description="Create a cloud connector agent (gmail, outlook, teams). Its OAuth grant lives in oauth/….",
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        config = cloud_agent_create(user=request.user, **_validated(CloudAgentInputSerializer, request))
        return Response(CloudAgentOutputSerializer(config).data, status=status.HTTP_201_CREATED)


class CloudAgentDetailApi(APIView):
    @extend_schema(
        request=CloudAgentInputSerializer,
        responses={200: CloudAgentOutputSerializer},
        operation_id="agents_cloud_update",
        description="Update the fields sent (others keep their values); the provider cannot change.",
    )
    def put(self, request: AuthenticatedRequest, agent_id: Any) -> Response:
        data = _validated(CloudAgentInputSerializer, request, partial=True)
        config = cloud_agent_update(user=request.user, agent_id=agent_id, **data)
        return Response(CloudAgentOutputSerializer(config).data)

    @extend_schema(responses={200: OK_SERIALIZER}, operation_id="agents_cloud_delete")
    def delete(self, request: AuthenticatedRequest, agent_id: Any) -> Response:
        cloud_agent_delete(user=request.user, agent_id=agent_id)
        return Response({"ok": True})


class RunListApi(APIView):
    class FilterSerializer(PageQuerySerializer):
        agent_id = serializers.UUIDField(required=False)

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        agent_id = serializers.UUIDField()
        agent_type = serializers.CharField()
        status = serializers.CharField()
        items_processed = serializers.IntegerField()
        items_created = serializers.IntegerField()
        # DRF's metaclass moves declared fields off the class, so this does not shadow
        # Serializer.errors at run time; the stubs cannot see that.
        errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
        started_at = serializers.DateTimeField()
        completed_at = serializers.DateTimeField(allow_null=True)
        trigger = serializers.CharField()
        scheduled_for = serializers.DateTimeField(allow_null=True)
        device_id = serializers.CharField()

    @extend_schema(
        parameters=[OpenApiParameter("agent_id", str), page_parameter(), limit_parameter()],
        responses={200: OutputSerializer(many=True)},
        operation_id="agents_runs_list",
        description="The user's runs, newest first, as a JSON array (one page); the total is in X-Total-Count.",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page, limit = filters.validated_data["page"], filters.validated_data["limit"]
        agent_id = filters.validated_data.get("agent_id")
        rows = page_slice(run_list(user=request.user, agent_id=agent_id), page=page, limit=limit)
        total = run_count(user=request.user, agent_id=agent_id)
        headers = {"X-Total-Count": str(total), "X-Page": str(page), "X-Limit": str(limit)}
        return Response(self.OutputSerializer(rows, many=True).data, headers=headers)


class AgentRunApi(APIView):
    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        run_id = serializers.UUIDField()

    @extend_schema(
        request=None,
        responses={200: OutputSerializer},
        operation_id="agents_run_now",
        description="Run an agent now (also a disabled one); 409 agent_already_running while a run is running.",
    )
    def post(self, request: Request, agent_id: Any) -> Response:
        config = agent_get(user=request.user, agent_id=agent_id)
        run = run_start(config=config, trigger=RunTrigger.MANUAL)
        return Response(self.OutputSerializer({"ok": True, "run_id": run.id}).data)


class JourneyOutputSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    message = serializers.CharField()
    done = serializers.BooleanField()
    prompt_template = serializers.CharField(required=False, help_text="Only when done.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data.get("prompt_template") is None:
            data.pop("prompt_template", None)
        return data


class JourneyStartApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502

    class InputSerializer(serializers.Serializer):
        agent_type = serializers.ChoiceField(choices=AgentType.values)
        agent_id = serializers.UUIDField(required=False, allow_null=True)

    @extend_schema(
        request=InputSerializer,
        responses={200: JourneyOutputSerializer},
        operation_id="agents_journey_start",
        description="Start a guided chat that writes an agent's prompt_template; agent_id refines an existing one.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reply = journey_start(user=request.user, **serializer.validated_data)
        return Response(JourneyOutputSerializer(reply).data)


class JourneyMessageApi(APIView):
    calls_upstream = True  # its outside provider can fail: a declared 502
    calls_model = True  # charged to the caller's token budget: a declared 402

    class InputSerializer(serializers.Serializer):
        session_id = serializers.RegexField(r"^[0-9a-f]{32}$")
        message = serializers.CharField(trim_whitespace=False)

    @extend_schema(
        request=InputSerializer,
        responses={200: JourneyOutputSerializer},
        operation_id="agents_journey_message",
        description="Answer the journey's question; after at most 5 answers it returns done with prompt_template.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reply = journey_message(user=request.user, **serializer.validated_data)
        return Response(JourneyOutputSerializer(reply).data)
