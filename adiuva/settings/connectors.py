"""Connectors: OAuth grants to Gmail / Outlook / Teams and their API clients."""

from __future__ import annotations

from .environment import env

# CONNECTORS (OAuth grants to Gmail / Outlook / Teams and their API clients)
# ------------------------------------------------------------------------------
# A provider without its client id and secret answers 503 ``provider_not_configured``. The
# redirect URI registered at the provider is OAUTH_REDIRECT_BASE_URL + /api/v1/oauth/<provider>/callback.
# These grants read mail for agents; they are not logins (allauth's SOCIAL_* are separate).
GOOGLE_OAUTH_CLIENT_ID = env("GOOGLE_OAUTH_CLIENT_ID", default="")
GOOGLE_OAUTH_CLIENT_SECRET = env("GOOGLE_OAUTH_CLIENT_SECRET", default="")
MICROSOFT_OAUTH_CLIENT_ID = env("MICROSOFT_OAUTH_CLIENT_ID", default="")
MICROSOFT_OAUTH_CLIENT_SECRET = env("MICROSOFT_OAUTH_CLIENT_SECRET", default="")
MICROSOFT_OAUTH_TENANT = env("MICROSOFT_OAUTH_TENANT", default="common")
OAUTH_REDIRECT_BASE_URL = env("OAUTH_REDIRECT_BASE_URL", default="http://127.0.0.1:8000")
# Provider endpoints: overridable for tests (a loopback fake) and national clouds.
GOOGLE_OAUTH_AUTHORIZE_URL = env("GOOGLE_OAUTH_AUTHORIZE_URL", default="https://accounts.google.com/o/oauth2/v2/auth")
GOOGLE_OAUTH_TOKEN_URL = env("GOOGLE_OAUTH_TOKEN_URL", default="https://oauth2.googleapis.com/token")
GOOGLE_OAUTH_REVOKE_URL = env("GOOGLE_OAUTH_REVOKE_URL", default="https://oauth2.googleapis.com/revoke")
GMAIL_API_BASE_URL = env("GMAIL_API_BASE_URL", default="https://gmail.googleapis.com/")
MICROSOFT_OAUTH_AUTHORITY_URL = env("MICROSOFT_OAUTH_AUTHORITY_URL", default="https://login.microsoftonline.com")
MICROSOFT_GRAPH_BASE_URL = env("MICROSOFT_GRAPH_BASE_URL", default="https://graph.microsoft.com/v1.0")
# A pending authorization (state + PKCE verifier) is usable once, for this many seconds.
CONNECTORS_OAUTH_STATE_TTL = env.int("CONNECTORS_OAUTH_STATE_TTL", default=600)
# Provider calls: timeout, retries of 5xx / network errors (exponential backoff from the base),
# and the longest Retry-After a fetch waits out before answering ``provider_rate_limited``.
CONNECTORS_HTTP_TIMEOUT = env.float("CONNECTORS_HTTP_TIMEOUT", default=20.0)
CONNECTORS_HTTP_MAX_RETRIES = env.int("CONNECTORS_HTTP_MAX_RETRIES", default=3)
CONNECTORS_HTTP_BACKOFF_SECONDS = env.float("CONNECTORS_HTTP_BACKOFF_SECONDS", default=0.5)
CONNECTORS_RETRY_AFTER_MAX_SECONDS = env.float("CONNECTORS_RETRY_AFTER_MAX_SECONDS", default=30.0)
# Bounds of one fetch: messages, characters of each body, pages read, Teams chats scanned, and
# how far back a first run (no cursor, no date_range.from) looks.
CONNECTORS_MAX_MESSAGES_PER_FETCH = env.int("CONNECTORS_MAX_MESSAGES_PER_FETCH", default=200)
CONNECTORS_MAX_BODY_CHARS = env.int("CONNECTORS_MAX_BODY_CHARS", default=20000)
CONNECTORS_MAX_PAGES = env.int("CONNECTORS_MAX_PAGES", default=20)
CONNECTORS_TEAMS_MAX_CHATS = env.int("CONNECTORS_TEAMS_MAX_CHATS", default=50)
CONNECTORS_INITIAL_LOOKBACK_DAYS = env.int("CONNECTORS_INITIAL_LOOKBACK_DAYS", default=7)
