"""Where every setting is read from: the process environment, over the project's optional ``.env``.

``.env`` is layered under the environment in the reader's own mapping (a variable set in the
environment wins) and never copied into ``os.environ``, so importing settings changes nothing in
the process. Settings modules for laptops and tests add fixed development values with ``defaults``,
under both. The environment is read live, so what an entry point exports before Django loads the
settings (the embedded services' URLs) is seen.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
APPS_DIR = BASE_DIR / "apps"


class _DotEnv(environ.Env):
    # django-environ's read_env stores into the class's mapping: this one, not os.environ.
    ENVIRON: dict[str, str] = {}


if (BASE_DIR / ".env").exists():
    _DotEnv.read_env(str(BASE_DIR / ".env"), overwrite=True)

_DEFAULTS: dict[str, str] = {}


class _Env(environ.Env):
    ENVIRON = ChainMap(os.environ, _DotEnv.ENVIRON, _DEFAULTS)


env = _Env()


def defaults(values: Mapping[str, str]) -> None:
    """Development values for variables neither the environment nor ``.env`` sets."""
    _DEFAULTS.update(values)
