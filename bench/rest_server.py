"""Benchmark server for bench/rest_per_process.py: adiuva.asgi under one uvicorn process, plus a bare
Django async view at ``/bench/bare-me`` returning the same JSON as ``auth/me`` (same middleware chain)
and the same view written sync at ``/bench/bare-sync-me``; with ADIUVA_BENCH_BODIES (a JSON file of
``{name: {"json": ...}}`` or ``{name: {"bytes": base64, "content_type": ...}}``), a bare async view per
name at ``/bench/bare/<name>`` answering that same body (JSON built from its data, as JsonResponse
builds it).

``python bench/rest_server.py PORT``; the code measured is ADIUVA_BENCH_CODE's checkout (device_common).
"""

from __future__ import annotations

import base64
import json
import os
import sys

from device_common import setup_django


def main() -> None:
    port = int(sys.argv[1])
    setup_django()
    from django.conf import settings
    from django.http import JsonResponse
    from django.urls import clear_url_caches, path

    body: dict[str, object] = {
        "id": "00000000-0000-0000-0000-000000000000",
        "email": "bench@bench.example",
        "tier": "free",
    }
    body |= {"email_verified": False, "time_zone": "UTC"}

    async def bare_me(request):
        return JsonResponse(body)

    def bare_sync_me(request):
        return JsonResponse(body)

    import adiuva.urls

    adiuva.urls.urlpatterns.insert(0, path("bench/bare-me", bare_me))
    # What running a view in a thread costs by itself (the most an async view could win back).
    adiuva.urls.urlpatterns.insert(0, path("bench/bare-sync-me", bare_sync_me))
    for name, body in _bodies().items():
        adiuva.urls.urlpatterns.insert(0, path(f"bench/bare/{name}", _bare_view(body)))
    clear_url_caches()
    settings.ALLOWED_HOSTS = ["*"]
    # The per-tier throttle still counts every request (its Redis script runs as in production), but
    # with a budget no run can spend: on a quiet box the paths of one minute passed the test
    # settings' budget and the bench stopped at a 429.
    settings.BILLING_RATE_LIMIT_SCALE = 1_000_000

    import uvicorn

    from adiuva.asgi import application

    uvicorn.run(application, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False)


def _bodies() -> dict[str, dict[str, object]]:
    bodies = os.environ.get("ADIUVA_BENCH_BODIES")
    if not bodies:
        return {}
    with open(bodies) as file:
        return json.load(file)


def _bare_view(body: dict[str, object]):
    """A bare async view answering ``body``: its data as JSON (a list too), or its bytes as they are."""
    from django.http import HttpResponse, JsonResponse

    if "json" in body:
        data = body["json"]

        async def bare_json(request):
            return JsonResponse(data, safe=False)

        return bare_json
    content = base64.b64decode(str(body["bytes"]))

    async def bare_bytes(request):
        return HttpResponse(content, content_type=body["content_type"])

    return bare_bytes


if __name__ == "__main__":
    main()
