"""The one door other apps use to read a user's mail and messages: ``connector_fetch``.

Synchronous (call it from Celery or through ``sync_to_async``), and outside a transaction: a token
refresh commits on its own (a refused one must stay recorded). It validates the filter, loads
the user's grant, and runs the provider's client with a token source that refreshes the grant
when needed; the cursor it returns is passed back next time to read only what is new.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from django.conf import settings

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .filters import filter_config_validate
from .gmail import gmail_fetch
from .grants import grant_access_token, grant_mark_needs_reconnect
from .messages import ConnectorMessage, FetchLimits, FetchResult
from .models import GrantStatus
from .outlook import outlook_fetch
from .provider_config import provider_config, provider_parse
from .providers import Provider
from .selectors import grant_get
from .teams import teams_fetch
from .transport import AccessTokenRejected, ProviderSession

__all__ = [
    "ConnectorError",
    "ConnectorMessage",
    "FetchResult",
    "connector_fetch",
    "filter_config_validate",
]

logger = logging.getLogger(__name__)

_CLIENTS = {Provider.GMAIL: gmail_fetch, Provider.OUTLOOK: outlook_fetch, Provider.TEAMS: teams_fetch}


def fetch_limits(*, max_messages: int) -> FetchLimits:
    return FetchLimits(
        max_messages=max(1, min(int(max_messages), settings.CONNECTORS_MAX_MESSAGES_PER_FETCH)),
        max_body_chars=settings.CONNECTORS_MAX_BODY_CHARS,
        max_pages=settings.CONNECTORS_MAX_PAGES,
        max_chats=settings.CONNECTORS_TEAMS_MAX_CHATS,
        lookback_days=settings.CONNECTORS_INITIAL_LOOKBACK_DAYS,
    )


def connector_fetch(
    *,
    user_id: uuid.UUID | str,
    provider: str,
    filter_config: dict,
    cursor: dict | None,
    max_messages: int = 50,
) -> FetchResult:
    """New messages of the user's ``provider`` account matching ``filter_config``.

    Raises ``ConnectorError``: ``grant_missing`` (never connected or disconnected),
    ``grant_needs_reconnect`` (the provider refused the tokens), ``provider_rate_limited``
    (``extra["retry_after"]`` seconds), ``provider_unavailable``, ``provider_not_configured``,
    ``filter_invalid``, ``provider_request_failed``.
    """
    provider = provider_parse(provider)
    filters = filter_config_validate(provider=provider, filter_config=filter_config)
    config = provider_config(provider)
    grant = grant_get(user_id=user_id, provider=provider)
    if grant is None or grant.status == GrantStatus.REVOKED:
        raise ConnectorError(
            ConnectorErrorCode.GRANT_MISSING,
            f"{provider.label} is not connected for this user.",
            extra={"provider": str(provider)},
        )
    grant_access_token(grant=grant)  # fail fast (needs_reconnect) before any provider call

    def token_source(*, rejected: str | None = None) -> str:
        return grant_access_token(grant=grant, rejected=rejected)

    client = _CLIENTS[provider]
    try:
        with ProviderSession(provider=provider, token_source=token_source) as session:
            result = client(
                session=session,
                api_base_url=config.api_base_url,
                filters=filters,
                cursor=cursor if isinstance(cursor, dict) else None,
                limits=fetch_limits(max_messages=max_messages),
                now=datetime.now(UTC),
            )
    except AccessTokenRejected:
        grant_mark_needs_reconnect(grant=grant, reason="The provider rejected the access token after a refresh.")
        raise ConnectorError(
            ConnectorErrorCode.GRANT_NEEDS_RECONNECT,
            f"{provider.label} no longer accepts this connection; authorize it again.",
            extra={"provider": str(provider)},
        ) from None
    logger.info(
        "connector fetch",
        extra={"provider": str(provider), "messages": len(result.messages), "grant_id": str(grant.id)},
    )
    return result
