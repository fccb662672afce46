"""OpenAPI generation: view-named components, and the error responses every operation can give.

Naming: ``RecordDetailApi.InputSerializer`` becomes the component ``RecordDetailInput`` (HackSoft-style
nested serializers would otherwise all collide as ``Input`` / ``Output``).

Errors: each operation declares, once and for all endpoints (present and future), the error statuses
that can reach it, all with the shared ``Error`` component (``{code, message, detail, request_id,
fields?}``): 400 when it takes a body or parameters, 401/403/429 when it is authenticated (or
throttled), 404 when it has path parameters or is authenticated, 413 when it may carry a body, 415
when it reads one (a DELETE only when its view sets ``delete_reads_body``), 405 and 503 everywhere.
An explicit ``extend_schema(responses=...)`` entry for a status always wins.
"""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular import openapi
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR_DESCRIPTIONS = {
    400: "Invalid input: `validation_error` (with `fields`), `malformed_request`, `json_too_deep`, …",
    401: "Not authenticated, or the credentials are not valid.",
    403: "Not allowed: `permission_denied`, `feature_not_available` (with the unlocking tier), `quota_exceeded`.",
    404: "No such resource, or it belongs to someone else.",
    405: "Method not allowed on this path.",
    413: "The request body is larger than this endpoint accepts (`payload_too_large`).",
    415: "Unsupported media type (`unsupported_media_type`); send JSON.",
    429: "Too many requests (`rate_limited`); see `Retry-After`.",
    502: "An outside provider (Stripe, the LLM, Google, Microsoft) failed: `stripe_unavailable`, `embedding_failed`…",
    503: "A backing service is unavailable (`service_unavailable`, `redis_unavailable`…); retry later.",
}


class ErrorSerializer(serializers.Serializer):
    """The one error shape of every 4xx/5xx answer (extra keys such as ``feature`` may be present)."""

    code = serializers.CharField(help_text="Stable machine-readable code.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    detail = serializers.CharField(help_text="The message again, for clients of the earlier backend.")
    request_id = serializers.CharField(allow_null=True, required=False)
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Serializer.fields at run time; the stubs cannot see that.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per-field reasons, for validation errors.",
    )

    class Meta:
        ref_name = "Error"


def nested_component_name(qualname: str) -> str:
    parts = [part.removesuffix("Serializer").removesuffix("Api") for part in qualname.split(".") if part != "<locals>"]
    return "".join(parts)


class AutoSchema(openapi.AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        qualname = type(serializer).__qualname__
        if "." in qualname and not isinstance(serializer, ErrorSerializer):
            return nested_component_name(qualname)
        return super().get_serializer_name(serializer, direction)

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        error = self._get_response_for_code(ErrorSerializer, "400", direction=direction)
        for status in sorted(self.error_statuses()):
            key = str(status)
            if key not in responses:
                responses[key] = {**error, "description": ERROR_DESCRIPTIONS[status]}
        return responses

    def error_statuses(self) -> set[int]:
        """The error statuses that can reach this operation, from what the view declares."""
        view = self.view
        # Any body is capped (413) before a view runs; only a view that reads one can refuse its type
        # (415), and a DELETE reads one only when its view says so (``delete_reads_body = True``).
        takes_body = self.method in ("POST", "PUT", "PATCH", "DELETE")
        has_body = takes_body and (self.method != "DELETE" or getattr(view, "delete_reads_body", False))
        has_path_params = "{" in self.path
        has_query_params = any(p.get("in") == "query" for p in self._get_parameters())
        authenticated = bool(getattr(view, "authentication_classes", None)) and not all(
            isinstance(permission, AllowAny) for permission in view.get_permissions()
        )
        throttled = bool(getattr(view, "throttle_classes", None))
        statuses = {405, 503}
        if has_body or has_query_params or has_path_params:
            statuses.add(400)
        if takes_body:
            statuses.add(413)
        if has_body:
            statuses.add(415)
        if authenticated:
            statuses |= {401, 403, 404}
        if throttled:
            statuses.add(429)
        if has_path_params:
            statuses.add(404)
        if getattr(view, "calls_upstream", False):
            statuses.add(502)
        return statuses
