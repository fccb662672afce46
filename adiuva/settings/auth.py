"""Identity: the user model and passwords, allauth (e-mail login, social login, SSO), the desktop
client's tokens, team invitations."""

from __future__ import annotations

from datetime import timedelta

from .environment import env
from .security import SECRET_KEY

# AUTHENTICATION
# ------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_REDIRECT_URL = "/api/v1/docs/"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# django-allauth: e-mail is the login; verification and password reset are allauth's flows.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_ADAPTER = "apps.accounts.adapters.AccountAdapter"
# Failed browser logins (allauth's page and the admin's, see accounts.admin_login) per client address
# and per account; once spent, even the right password waits for the window to pass.
ACCOUNT_RATE_LIMITS = {"login_failed": env("ACCOUNT_LOGIN_FAILED_RATE_LIMIT", default="10/m/ip,5/5m/key")}
# Social login / SSO (team tier): a provider is offered only when its credentials are set.
SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {}
_SOCIAL_APPS = {
    "google": (env("SOCIAL_GOOGLE_CLIENT_ID", default=""), env("SOCIAL_GOOGLE_SECRET", default="")),
    "microsoft": (env("SOCIAL_MICROSOFT_CLIENT_ID", default=""), env("SOCIAL_MICROSOFT_SECRET", default="")),
}
for _provider, (_client_id, _secret) in _SOCIAL_APPS.items():
    if _client_id:
        SOCIALACCOUNT_PROVIDERS[_provider] = {"APPS": [{"client_id": _client_id, "secret": _secret, "key": ""}]}
_OIDC_SERVER_URL = env("SOCIAL_OIDC_SERVER_URL", default="")
if _OIDC_SERVER_URL:
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "APPS": [
            {
                "provider_id": env("SOCIAL_OIDC_PROVIDER_ID", default="sso"),
                "name": env("SOCIAL_OIDC_NAME", default="Single sign-on"),
                "client_id": env("SOCIAL_OIDC_CLIENT_ID"),
                "secret": env("SOCIAL_OIDC_SECRET"),
                "settings": {"server_url": _OIDC_SERVER_URL},
            }
        ]
    }

SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.SocialAccountAdapter"

# SSO (single sign-on into the desktop client, team tier)
# ------------------------------------------------------------------------------
# After allauth's browser login, /api/v1/auth/sso/complete sends the browser here with a one-time
# ?code= (or ?error=) that the app trades for its tokens at POST /api/v1/auth/sso/exchange.
SSO_CLIENT_REDIRECT_URL = env("SSO_CLIENT_REDIRECT_URL", default="adiuva://sso/callback")
SSO_CODE_TTL_SECONDS = env.int("SSO_CODE_TTL_SECONDS", default=60)

# TEAMS: the accept links of an invitation e-mail (?token=… is appended): the desktop app's, and
# the server's browser page (which asks to sign in first).
TEAM_INVITATION_DESKTOP_URL = env("TEAM_INVITATION_DESKTOP_URL", default="adiuva://teams/accept")
TEAM_INVITATION_BROWSER_URL = env("TEAM_INVITATION_BROWSER_URL", default="http://127.0.0.1:8000/teams/accept")
# A team's own identity provider is a URL a team admin chose, fetched by the server: only public
# addresses over https, except the hosts named here (an on-premises provider), which may also be http.
TEAM_IDP_ALLOWED_PRIVATE_HOSTS = env.list("TEAM_IDP_ALLOWED_PRIVATE_HOSTS", default=[])

# JWT for the desktop client (access tokens; refresh tokens are opaque and rotate, see accounts)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env("JWT_SIGNING_KEY", default=SECRET_KEY),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
}
JWT_REFRESH_DAYS = env.int("JWT_REFRESH_DAYS", default=30)
