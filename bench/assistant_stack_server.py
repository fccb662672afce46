"""The Adiuva ASGI app of one checkout under uvicorn, for bench/assistant_streaming.py (a process of its own).

    python bench/assistant_stack_server.py ROOT PORT DATABASE MODEL_URL [--profile OUT.html]

Imports ``adiuva`` from ROOT (this checkout or an older one, e.g. a ``git worktree``), migrates
its own benchmark DATABASE, creates the benchmark user and prints ``{"token": ...}`` on stdout,
then serves with the Procfile's websocket options until SIGTERM. With ``--profile``,
pyinstrument records the whole serving time and writes an HTML report on exit.
This file imports nothing from the checkout it lives in, so it can serve an older one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from datetime import timedelta


def _prepare(database: str, model_url: str) -> str:
    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["default"]["NAME"] = database
    _ensure_database(database)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.accounts.models import User
    from apps.accounts.tokens import tokens_issue

    AccessToken.lifetime = timedelta(hours=2)
    user, _ = User.objects.get_or_create(email="asstbench@bench.example")
    token = tokens_issue(user=user).access_token
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-bench", model_url
    settings.ASSISTANT_REQUEST_TIMEOUT = 120.0
    settings.ASSISTANT_LLM_TIMEOUT = 60.0
    from django.db import connections

    connections.close_all()  # the server's threads open their own
    return token


def _ensure_database(name: str) -> None:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("pool", None)
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("port", type=int)
    parser.add_argument("database")
    parser.add_argument("model_url")
    parser.add_argument("--profile")
    args = parser.parse_args()
    os.chdir(args.root)
    sys.path.insert(0, args.root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
    token = _prepare(args.database, args.model_url)

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    config = uvicorn.Config(
        "adiuva.asgi:application",
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws="websockets-sansio",
        ws_max_size=2 * 1024 * 1024,
        ws_max_queue=8,
    )
    server = uvicorn.Server(config)
    profiler = None
    if args.profile:
        # uvicorn re-raises the SIGTERM it caught after shutting down; SIGTERM's default would
        # end the process before the report is written.
        signal.signal(signal.SIGTERM, lambda *_: None)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
    print(json.dumps({"token": token}), flush=True)
    try:
        server.run(sockets=[sock])  # re-raises the SIGTERM it caught once it has shut down
    finally:
        _write_profile(profiler, args.profile)


def _write_profile(profiler, path: str | None) -> None:
    if profiler is not None and path is not None:
        profiler.stop()
        with open(path, "w") as out:
            out.write(profiler.output_html())
        with open(path.removesuffix(".html") + ".txt", "w") as out:
            out.write(profiler.output_text(unicode=False, color=False, show_all=True))


if __name__ == "__main__":
    main()
