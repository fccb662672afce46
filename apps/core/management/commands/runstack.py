"""Migrate, then run the whole backend (ASGI server, Celery worker, Celery Beat) from the Procfile."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from honcho.manager import Manager

from adiuva import embedded


def procfile_commands(path: Path) -> dict[str, str]:
    commands: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


class Command(BaseCommand):
    help = "Apply migrations and start web, worker and beat together; Ctrl-C stops them all."

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=1)
        port = os.environ.setdefault("PORT", "8000")
        host = os.environ.setdefault("HOST", "127.0.0.1")
        base = f"http://{host}:{port}"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nAdiuva is starting on {base}\n"
                f"  API docs   {base}/api/v1/docs/\n"
                f"  Admin      {base}/admin/   (python manage.py createsuperuser to get in)\n"
                f"  Health     {base}/api/v1/health\n"
            )
        )
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        # Samples of processes from an earlier run would be summed into this run's metrics.
        metrics_dir = Path(settings.PROMETHEUS_MULTIPROC_DIR)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink(missing_ok=True)
        # A killed embedded Redis or PostgreSQL comes back by itself (servers named by URL are not touched).
        stop_supervising = threading.Event()
        threading.Thread(
            target=embedded.supervise_embedded_services, kwargs={"stop": stop_supervising}, daemon=True
        ).start()
        manager = Manager()
        for name, command in procfile_commands(Path(settings.BASE_DIR) / "Procfile").items():
            manager.add_process(name, command, env=env)  # run by a shell: ${PORT:-8000} expands
        manager.loop()
        stop_supervising.set()
        sys.exit(manager.returncode)
