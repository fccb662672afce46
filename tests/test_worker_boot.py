"""A Celery worker's boot (adiuva.celery → startup.worker_warm): what a task's first calls import is
imported before any task runs, in the process the pool's workers are forked from."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_a_worker_boot_imports_what_the_first_run_would_import():
    # A fresh interpreter: in the test process these modules were imported long ago.
    script = textwrap.dedent(
        """
        import sys
        from celery.signals import worker_init
        import adiuva.celery  # the Celery app, as `celery -A adiuva worker` loads it
        import django
        django.setup()
        wanted = ["anyio._backends._asyncio", "channels_redis.core", "django.core.cache.backends.redis"]
        before = [name for name in wanted if name in sys.modules]
        worker_init.send(sender=None)
        print(before, [name for name in wanted if name not in sys.modules])
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "adiuva.settings.test"}  # this run's services
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    # then none was imported by the app's setup alone, and every one was by the worker's boot
    assert answer.stdout.strip().splitlines()[-1] == "[] []"
