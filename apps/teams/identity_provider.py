"""The team's own OpenID Connect provider (issuer, client id, client secret), registered by its
owner or an admin. The secret is encrypted under the server's master keys at rest, never returned,
and decrypted only in memory when sign-in talks to the provider."""

from __future__ import annotations

import uuid
from typing import NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from apps.accounts.master_key_rotation import rows_resealed
from apps.accounts.models import User
from apps.core.audit import AuditAction, audit_record
from apps.core.encryption import master_fernet
from apps.core.errors import ApplicationError, NotFoundError
from apps.core.guarded_http import HostRefused, Resolver, host_addresses_checked, host_is_allowed, host_is_ip_literal

from .error_codes import TeamsErrorCode
from .models import TEAM_PROVIDER_PREFIX, Team, TeamDomain, TeamIdentityProvider
from .selectors import membership_in_team, require_managing_role


class TeamProviderCredentials(NamedTuple):
    """What sign-in needs to talk to a team's provider; ``secret`` is plaintext, keep it in memory."""

    team: Team
    provider_id: str
    issuer: str
    client_id: str
    secret: str


def issuer_clean(value: str, *, resolve: Resolver | None = None) -> str:
    """An issuer is an https URL with a host and no query, fragment or credentials (OpenID Connect
    Discovery 1.0 §3); returned without its trailing slash. 400 ``issuer_invalid`` otherwise. The host
    must be public (400 ``issuer_not_public``) unless the operator allowed it
    (``TEAM_IDP_ALLOWED_PRIVATE_HOSTS``), which may then also be reached over http."""
    issuer = value.strip().rstrip("/")
    allowed_hosts = settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS
    try:
        parts = urlsplit(issuer)
        port = parts.port  # raises ValueError when it is not a number
    except ValueError:
        parts, port = None, None
    host = (parts.hostname or "") if parts is not None else ""
    valid = (
        parts is not None
        and (parts.scheme == "https" or (parts.scheme == "http" and host_is_allowed(host, allowed_hosts)))
        and bool(host)
        and not parts.query
        and not parts.fragment
        and parts.username is None
        and (port is None or 0 < port < 65536)
        and "/.well-known/" not in parts.path
    )
    if not valid:
        reason = "The issuer must be the provider's https URL, such as 'https://login.agency.example'."
        raise ApplicationError(TeamsErrorCode.ISSUER_INVALID, reason, fields={"issuer": [reason]})
    _issuer_host_check(host, port or (443 if parts is not None and parts.scheme == "https" else 80), resolve=resolve)
    return issuer


def _issuer_host_check(host: str, port: int, *, resolve: Resolver | None) -> None:
    # Checked again on every fetch (DNS can change); a name that does not resolve yet is let through.
    allowed_hosts = settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS
    if host_is_allowed(host, allowed_hosts):
        return
    reason = (
        "The issuer's host must be a public name: the server does not fetch from addresses that are "
        "loopback, private, link-local, multicast, reserved or unspecified, nor from IP literals."
    )
    refused = ApplicationError(TeamsErrorCode.ISSUER_NOT_PUBLIC, reason, fields={"issuer": [reason]})
    if host_is_ip_literal(host):
        raise refused
    try:
        host_addresses_checked(host, port, allowed_hosts=allowed_hosts, resolve=resolve)
    except HostRefused:
        raise refused from None
    except OSError:
        return


def secret_seal(secret: str) -> bytes:
    return master_fernet().encrypt(secret.encode())


def secret_unseal(sealed: bytes | memoryview) -> str:
    return master_fernet().decrypt(bytes(sealed)).decode()


def identity_provider_secrets_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypt every provider secret under the first master key (``rotate_master_keys``); returns
    how many were."""
    fernet = master_fernet()

    def reseal(row: TeamIdentityProvider) -> None:
        row.secret_encrypted = fernet.rotate(bytes(row.secret_encrypted))

    return rows_resealed(
        model=TeamIdentityProvider, key="pk", reseal=reseal, fields=["secret_encrypted"], batch_size=batch_size
    )


def identity_provider_get(*, team_id: uuid.UUID, actor: User) -> TeamIdentityProvider:
    """The team's provider for its owner or an admin; 404 when it has none."""
    require_managing_role(membership_in_team(user=actor, team_id=team_id))
    row = TeamIdentityProvider.objects.filter(team_id=team_id).first()
    if row is None:
        raise NotFoundError("Identity provider")
    return row


def identity_provider_set(
    *,
    team_id: uuid.UUID,
    actor: User,
    issuer: str,
    client_id: str,
    secret: str | None = None,
    resolve: Resolver | None = None,
) -> TeamIdentityProvider:
    """Register or replace the team's provider (audited). The secret is required the first time;
    left out later, the stored one is kept. ``resolve`` looks the issuer's host up (tests pass a stub)."""
    require_managing_role(membership_in_team(user=actor, team_id=team_id))
    issuer = issuer_clean(issuer, resolve=resolve)
    with transaction.atomic():
        row = TeamIdentityProvider.objects.select_for_update().filter(team_id=team_id).first()
        if row is None and not secret:
            raise ApplicationError(
                TeamsErrorCode.IDENTITY_PROVIDER_SECRET_REQUIRED,
                "The client secret is required when registering the provider.",
                fields={"secret": ["This field is required."]},
            )
        row = row or TeamIdentityProvider(team_id=team_id)
        row.issuer = issuer
        row.client_id = client_id.strip()
        if secret:
            row.secret_encrypted = secret_seal(secret)
        row.save()
        audit_record(
            action=AuditAction.TEAM_IDENTITY_PROVIDER_SET,
            actor=actor,
            target=row.team,
            data={"issuer": issuer, "client_id": row.client_id, "secret_changed": bool(secret)},
        )
    return row


def identity_provider_remove(*, team_id: uuid.UUID, actor: User) -> None:
    """Remove the team's provider (audited): nobody joins the team through SSO until one is set again.
    Accounts already linked to it keep their passwords and memberships."""
    row = identity_provider_get(team_id=team_id, actor=actor)
    with transaction.atomic():
        audit_record(
            action=AuditAction.TEAM_IDENTITY_PROVIDER_REMOVED, actor=actor, target=row.team, data={"issuer": row.issuer}
        )
        row.delete()


def team_id_of_provider(provider_id: str) -> uuid.UUID | None:
    """The team a ``team-<uuid>`` provider id names (None for any other provider)."""
    if not provider_id.startswith(TEAM_PROVIDER_PREFIX):
        return None
    try:
        return uuid.UUID(provider_id.removeprefix(TEAM_PROVIDER_PREFIX))
    except ValueError:
        return None


def team_provider_credentials(*, provider_id: str) -> TeamProviderCredentials | None:
    """The credentials of the team provider ``provider_id`` names, secret decrypted (None if none)."""
    team_id = team_id_of_provider(provider_id)
    if team_id is None:
        return None
    row = TeamIdentityProvider.objects.select_related("team").filter(team_id=team_id).first()
    if row is None:
        return None
    return TeamProviderCredentials(
        team=row.team,
        provider_id=row.provider_id,
        issuer=row.issuer,
        client_id=row.client_id,
        secret=secret_unseal(row.secret_encrypted),
    )


def team_provider_for_email(*, email: str) -> str | None:
    """The provider id of the team that proved ``email``'s domain and registered its own provider:
    where a person of that company signs in (home-realm discovery)."""
    domain = email.rsplit("@", 1)[-1].strip().lower()
    row = (
        TeamDomain.objects.filter(domain=domain, verified_at__isnull=False, team__identity_provider__isnull=False)
        .values_list("team_id", flat=True)
        .first()
    )
    return f"{TEAM_PROVIDER_PREFIX}{row}" if row is not None else None


def team_provider_vouches_for(*, provider_id: str, email: str) -> Team | None:
    """The team whose own provider is ``provider_id``, when ``email``'s domain is one it proved:
    only then does that provider's word about the address count for the team."""
    team_id = team_id_of_provider(provider_id)
    if team_id is None or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[-1].lower()
    row = (
        TeamDomain.objects.select_related("team")
        .filter(team_id=team_id, domain=domain, verified_at__isnull=False, team__identity_provider__isnull=False)
        .first()
    )
    return row.team if row is not None else None
