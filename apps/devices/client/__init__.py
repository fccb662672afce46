"""Reference device client (websockets + SQLite), usable without Django."""

from .client import CLIENT_CAPABILITIES, DeviceClient
from .store import LocalStore, ToolError

__all__ = ["CLIENT_CAPABILITIES", "DeviceClient", "LocalStore", "ToolError"]
