"""WebSocket route of the devices app."""

from django.urls import re_path

from .consumers import DeviceConsumer
from .middleware import DeviceSocketAuthMiddleware

websocket_urlpatterns = [
    re_path(r"^api/v1/ws/device/?$", DeviceSocketAuthMiddleware(DeviceConsumer.as_asgi())),
]
