"""Deployment files stay consistent with the settings; production refuses unsafe starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_DIR = ROOT / "adiuva" / "settings"
# Read by the process files (Procfile, Dockerfile, docker-compose) rather than by Django settings.
PROCESS_VARIABLES = {
    "DJANGO_SETTINGS_MODULE",
    "PORT",
    "HOST",
    "WEB_CONCURRENCY",
    "CELERY_CONCURRENCY",
    "FORWARDED_ALLOW_IPS",
}
COMPOSE_ONLY = {"POSTGRES_PASSWORD"}


def _settings_variables() -> set[str]:
    pattern = re.compile(r"""env(?:\.\w+)?\(\s*["']([A-Z0-9_]+)["']""")
    found: set[str] = set()
    for path in SETTINGS_DIR.glob("*.py"):
        found |= set(pattern.findall(path.read_text()))
    return found


def _example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def test_every_variable_compose_passes_is_read_by_the_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    passed = set(compose["x-app"]["environment"])

    assert passed - _settings_variables() - PROCESS_VARIABLES == set()


def test_env_example_lists_every_variable_the_settings_read():
    assert _settings_variables() - _example_variables() == set()
    assert _example_variables() - _settings_variables() - PROCESS_VARIABLES - COMPOSE_ONLY == set()


def test_compose_has_the_whole_stack():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    assert {"db", "redis", "migrate", "web", "worker", "beat"} <= set(compose["services"])
    assert "pgvector" in compose["services"]["db"]["image"]


def _production_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "FERNET_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="adiuva.settings.production",
        DJANGO_SECRET_KEY="x" * 60 + "-production-secret-with-enough-entropy",
        FERNET_MASTER_KEYS=Fernet.generate_key().decode(),
        DJANGO_ALLOWED_HOSTS="api.example.com",
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value != ""}


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "FERNET_MASTER_KEYS", "DJANGO_ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_its_secrets(missing):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_production_env(**{missing: ""}),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert missing in result.stderr


def test_production_passes_check_deploy_and_ignores_debug():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(DJANGO_DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    debug = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=ROOT,
        env=_production_env(DJANGO_DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    assert debug.stdout.strip() == "False"
