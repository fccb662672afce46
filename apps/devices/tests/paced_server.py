"""Imported only by a server process a test starts: its ``home_request`` becomes the paced handler.

Importing this in the test process would replace the chat handler for every later test."""

from apps.devices import handlers
from apps.devices.tests.paced_handlers import paced_request

handlers.register_request_handler("home_request", paced_request, replace=True)
