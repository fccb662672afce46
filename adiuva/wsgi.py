"""WSGI entry point (admin-only deployments; the API runs under ASGI)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.local")
application = get_wsgi_application()
