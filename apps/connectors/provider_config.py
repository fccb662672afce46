"""Each provider's OAuth client, endpoints and scopes, read from settings at call time.

Endpoints come from settings so tests (and sovereign clouds) can point them elsewhere; an
unconfigured provider raises ``provider_not_configured`` naming the variables to set.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .providers import Provider

GOOGLE_SCOPES = ("https://www.googleapis.com/auth/gmail.readonly", "openid", "email")
OUTLOOK_SCOPES = ("https://graph.microsoft.com/Mail.Read", "offline_access")
TEAMS_SCOPES = (
    "https://graph.microsoft.com/ChannelMessage.Read.All",
    "https://graph.microsoft.com/Chat.Read",
    "offline_access",
)


@dataclass(frozen=True)
class ProviderConfig:
    provider: Provider
    family: str  # "google" or "microsoft": who issues the tokens
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    api_base_url: str
    scopes: tuple[str, ...]
    required_scope: str = ""  # the API scope the user may not deselect on the consent page
    revoke_url: str = ""  # Google only: Microsoft has no endpoint revoking one app's delegated tokens

    @property
    def redirect_uri(self) -> str:
        return f"{settings.OAUTH_REDIRECT_BASE_URL.rstrip('/')}/api/v1/oauth/{self.provider}/callback"

    def authorization_url(self, *, state: str, code_challenge: str) -> str:
        params = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": " ".join(self.scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if self.family == "google":
            # offline + consent: Google returns a refresh token only when both are asked for.
            params |= {"access_type": "offline", "prompt": "consent"}
        else:
            params |= {"response_mode": "query"}
        return f"{self.authorize_url}?{urlencode(params)}"


def scopes_include(granted: list[str], required: str) -> bool:
    """Whether ``required`` was granted; Microsoft may answer ``Mail.Read`` or its full URI."""
    required = required.lower().rsplit("/", 1)[-1]
    return not required or any(scope.lower().rsplit("/", 1)[-1] == required for scope in granted)


def provider_parse(value: str) -> Provider:
    """The ``Provider`` named by a URL segment or argument; unknown names are a 404."""
    try:
        return Provider(value)
    except ValueError:
        raise ConnectorError(
            ConnectorErrorCode.PROVIDER_UNKNOWN,
            f"Unknown provider '{value}'; expected one of: {', '.join(Provider.values)}.",
        ) from None


def provider_config(provider: Provider | str) -> ProviderConfig:
    """The provider's configuration, or a 503 ``provider_not_configured`` saying what to set."""
    provider = provider_parse(str(provider))
    if provider == Provider.GMAIL:
        config = ProviderConfig(
            provider=provider,
            family="google",
            client_id=settings.GOOGLE_OAUTH_CLIENT_ID,
            client_secret=settings.GOOGLE_OAUTH_CLIENT_SECRET,
            authorize_url=settings.GOOGLE_OAUTH_AUTHORIZE_URL,
            token_url=settings.GOOGLE_OAUTH_TOKEN_URL,
            api_base_url=settings.GMAIL_API_BASE_URL,
            scopes=GOOGLE_SCOPES,
            required_scope=GOOGLE_SCOPES[0],
            revoke_url=settings.GOOGLE_OAUTH_REVOKE_URL,
        )
        needed = ("GOOGLE_OAUTH_CLIENT_ID", "GOOGLE_OAUTH_CLIENT_SECRET")
    else:
        authority = f"{settings.MICROSOFT_OAUTH_AUTHORITY_URL.rstrip('/')}/{settings.MICROSOFT_OAUTH_TENANT}"
        config = ProviderConfig(
            provider=provider,
            family="microsoft",
            client_id=settings.MICROSOFT_OAUTH_CLIENT_ID,
            client_secret=settings.MICROSOFT_OAUTH_CLIENT_SECRET,
            authorize_url=f"{authority}/oauth2/v2.0/authorize",
            token_url=f"{authority}/oauth2/v2.0/token",
            api_base_url=settings.MICROSOFT_GRAPH_BASE_URL,
            scopes=OUTLOOK_SCOPES if provider == Provider.OUTLOOK else TEAMS_SCOPES,
            required_scope="Mail.Read" if provider == Provider.OUTLOOK else "Chat.Read",
        )
        needed = ("MICROSOFT_OAUTH_CLIENT_ID", "MICROSOFT_OAUTH_CLIENT_SECRET")
    if not (config.client_id and config.client_secret):
        raise ConnectorError(
            ConnectorErrorCode.PROVIDER_NOT_CONFIGURED,
            f"{provider.label} is not configured on this server: set {' and '.join(needed)}.",
            extra={"provider": str(provider), "settings": list(needed)},
        )
    return config
