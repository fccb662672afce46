"""Test helpers shared by every app: the real ASGI server on loopback and a headless browser."""
