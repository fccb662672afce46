"""Agents routes under /api/v1/agents/."""

from django.urls import path

from .apis import (
    AgentRunApi,
    CatalogApi,
    CloudAgentDetailApi,
    CloudAgentListCreateApi,
    JourneyMessageApi,
    JourneyStartApi,
    LocalAgentDetailApi,
    LocalAgentListCreateApi,
    RunListApi,
)

urlpatterns = [
    path("agents/catalog", CatalogApi.as_view(), name="agents-catalog"),
    path("agents/local", LocalAgentListCreateApi.as_view(), name="agents-local"),
    path("agents/local/<uuid:agent_id>", LocalAgentDetailApi.as_view(), name="agents-local-detail"),
    path("agents/cloud", CloudAgentListCreateApi.as_view(), name="agents-cloud"),
    path("agents/cloud/<uuid:agent_id>", CloudAgentDetailApi.as_view(), name="agents-cloud-detail"),
    path("agents/runs", RunListApi.as_view(), name="agents-runs"),
    path("agents/journey/start", JourneyStartApi.as_view(), name="agents-journey-start"),
    path("agents/journey/message", JourneyMessageApi.as_view(), name="agents-journey-message"),
    path("agents/<uuid:agent_id>/run", AgentRunApi.as_view(), name="agents-run"),
]
