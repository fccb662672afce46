"""ASGI entry point: HTTP through Django (behind the body caps), WebSockets through Channels' router,
lifespan events to the device drain (rolling deploys).

``PUT /api/v1/backup`` is answered by a pure-ASGI route in front of Django
(``apps.storage.backup_stream``) that streams the body to storage at disk speed and caps it at the
user's remaining quota; Django would spool it to a temporary file first.
"""

from adiuva import startup

startup.prepare()

from apps.core.request_threads import pooled_asgi_application  # noqa: E402

# Django's handler, each request's sync thread from a pool instead of started anew (apps.core.request_threads).
django_asgi_app = pooled_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from adiuva.routing import websocket_urlpatterns  # noqa: E402
from apps.core.body_limits import BodyLimitMiddleware  # noqa: E402
from apps.devices.drain import lifespan_app  # noqa: E402
from apps.storage.backup_stream import BackupUploadRoute  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Bodies over a route's cap are refused before Django reads them (apps.core.body_limits).
        "http": BackupUploadRoute(BodyLimitMiddleware(django_asgi_app)),
        "websocket": URLRouter(websocket_urlpatterns),
        # Startup puts the device drain in front of uvicorn's SIGTERM handler (apps.devices.drain).
        "lifespan": lifespan_app,
    }
)
# Last: what the imports above made lives as long as the process (see imported_objects_freeze).
startup.imported_objects_freeze()
