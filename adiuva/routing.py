"""WebSocket routes; each domain app contributes its own patterns."""

websocket_urlpatterns: list = []
