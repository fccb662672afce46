"""Settings shared by every environment, composed from one module per domain; every value comes from
the environment (environment.py reads it).

Each setting is stated once, in its domain's module: django (the framework: hosts, database, apps,
middleware, templates, e-mail), security (keys, cookies, request body caps, CORS), auth, services
(Redis: cache, channel layer, Celery), api (REST framework, OpenAPI), storage, devices, connectors,
assistant, memory, agents, billing, marketplace, observability (logging, metrics). local.py, test.py
and production.py change a few of them per environment. Importing settings has no side effects.
"""

from .agents import *  # noqa: F403
from .api import *  # noqa: F403
from .assistant import *  # noqa: F403
from .auth import *  # noqa: F403
from .billing import *  # noqa: F403
from .connectors import *  # noqa: F403
from .devices import *  # noqa: F403
from .django import *  # noqa: F403
from .environment import APPS_DIR, BASE_DIR, env  # noqa: F401
from .marketplace import *  # noqa: F403
from .memory import *  # noqa: F403
from .observability import *  # noqa: F403
from .security import *  # noqa: F403
from .services import *  # noqa: F403
from .storage import *  # noqa: F403
