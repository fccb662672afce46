"""Stable error codes of the devices domain (tool calls, the socket's error frames)."""

from enum import StrEnum


class DevicesErrorCode(StrEnum):
    DEVICE_OFFLINE = "device_offline"
    DEVICE_TIMEOUT = "device_timeout"
    DEVICE_DISCONNECTED = "device_disconnected"
    DEVICE_TOOL_ERROR = "device_tool_error"
    DEVICE_BUSY = "device_busy"
    DEVICE_NOT_FOUND = "device_not_found"
    # error frames on the socket
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_FRAME_TYPE = "unknown_frame_type"
    INVALID_FRAME = "invalid_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    HELLO_REQUIRED = "hello_required"
    DUPLICATE_REQUEST = "duplicate_request"
    UNKNOWN_REQUEST = "unknown_request"
    NOT_IMPLEMENTED = "not_implemented"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    STREAM_EXPIRED = "stream_expired"
    DEVICE_LIMIT = "device_limit"
    SERVER_RESTARTING = "server_restarting"
