"""WebSocket routes; each domain app contributes its own patterns."""

from apps.devices.routing import websocket_urlpatterns as device_patterns

websocket_urlpatterns: list = [*device_patterns]
