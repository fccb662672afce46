"""Stable error codes of the assistant (chat, streaming, embeddings)."""

from enum import StrEnum


class AssistantErrorCode(StrEnum):
    LLM_NOT_CONFIGURED = "llm_not_configured"
    LLM_UNAVAILABLE = "llm_unavailable"
    LLM_MALFORMED_RESPONSE = "llm_malformed_response"
    EMBEDDING_FAILED = "embedding_failed"
    MESSAGE_TOO_LONG = "message_too_long"
    MESSAGE_EMPTY = "message_empty"
    SCOPE_INVALID = "scope_invalid"
    SCOPE_NOT_FOUND = "scope_not_found"
    REQUEST_TIMEOUT = "assistant_timeout"
    CANCELLED = "cancelled"
    INTERNAL_ERROR = "assistant_error"
