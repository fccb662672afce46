"""Reference device client (websockets + SQLite), usable without Django."""

from .client import DeviceClient
from .store import LocalStore, ToolError

__all__ = ["DeviceClient", "LocalStore", "ToolError"]
