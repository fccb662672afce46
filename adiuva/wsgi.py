"""WSGI entry point (admin-only deployments; the API runs under ASGI)."""

from django.core.wsgi import get_wsgi_application

from adiuva import startup

startup.prepare()
application = get_wsgi_application()
