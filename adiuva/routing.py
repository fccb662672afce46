"""WebSocket routes; each domain app contributes its own patterns. A socket to any other path is
refused at the handshake (HTTP 403), not answered with a server error."""

from channels.security.websocket import WebsocketDenier
from django.urls import re_path

from apps.devices.routing import websocket_urlpatterns as device_patterns

websocket_urlpatterns: list = [*device_patterns, re_path(r"", WebsocketDenier.as_asgi())]
