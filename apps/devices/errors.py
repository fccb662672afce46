"""Typed failures of a tool call on a device; each carries a stable code (see error_codes)."""

from __future__ import annotations

from apps.core.errors import ApplicationError

from .error_codes import DevicesErrorCode


class DeviceCallError(ApplicationError):
    """Base of every failure of ``call_device`` / ``send_to_device``."""

    code_value: DevicesErrorCode = DevicesErrorCode.DEVICE_OFFLINE
    default_message = "The device call failed."
    http_status = 409

    def __init__(self, message: str | None = None) -> None:
        super().__init__(self.code_value, message or self.default_message, status=self.http_status)


class DeviceOfflineError(DeviceCallError):
    code_value = DevicesErrorCode.DEVICE_OFFLINE
    default_message = "No device of this user is online."


class DeviceTimeoutError(DeviceCallError):
    code_value = DevicesErrorCode.DEVICE_TIMEOUT
    default_message = "The device did not answer in time."
    http_status = 504


class DeviceDisconnectedError(DeviceCallError):
    code_value = DevicesErrorCode.DEVICE_DISCONNECTED
    default_message = "The device disconnected before answering."


class DeviceToolError(DeviceCallError):
    """The client ran the call and reported an error; ``message`` is the client's text."""

    code_value = DevicesErrorCode.DEVICE_TOOL_ERROR
    default_message = "The device reported an error."
    http_status = 422


class DeviceBusyError(DeviceCallError):
    """The channel of the process holding the device is full (channels-redis capacity)."""

    code_value = DevicesErrorCode.DEVICE_BUSY
    default_message = "The device's server is overloaded; try again."
    http_status = 503


class DeviceLimitError(ApplicationError):
    """The user has DEVICE_MAX_PER_USER devices and none of them is offline to make room."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            DevicesErrorCode.DEVICE_LIMIT,
            f"At most {limit} devices per account; all of them are online. Close one and reconnect.",
            status=409,
        )


class DeviceHelloRefusedError(ApplicationError):
    """The database refused a value of the hello (one its frame checks let through)."""

    def __init__(self) -> None:
        super().__init__(
            DevicesErrorCode.INVALID_FRAME,
            "Invalid device_hello frame: one of its values cannot be stored.",
            status=400,
        )


ERROR_BY_CODE: dict[str, type[DeviceCallError]] = {
    cls.code_value.value: cls
    for cls in (DeviceOfflineError, DeviceTimeoutError, DeviceDisconnectedError, DeviceToolError, DeviceBusyError)
}
