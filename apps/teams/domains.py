"""E-mail domains a team claims for SSO, proven by a DNS TXT record ``adiuva-verification=<token>``
(looked up with dnspython; the resolver is a parameter so tests pass a stub) or by staff."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterable

import dns.exception
import dns.resolver
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core.audit import AuditAction, audit_record
from apps.core.errors import ApplicationError, CoreErrorCode, NotFoundError

from .error_codes import TeamsErrorCode
from .models import Team, TeamDomain
from .selectors import membership_in_team, require_managing_role

DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

# Returns the TXT strings published at a name (empty when there are none or the lookup fails).
TxtResolver = Callable[[str], Iterable[str]]


def dns_txt_records(name: str) -> list[str]:
    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=5.0)
    except (dns.exception.DNSException, OSError):
        return []
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def domain_clean(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    if not DOMAIN_PATTERN.match(domain):
        reason = f"'{value}' is not a domain name such as 'agency.example'."
        raise ApplicationError(CoreErrorCode.VALIDATION_ERROR, f"domain: {reason}", fields={"domain": [reason]})
    return domain


def domain_claim(*, team_id: uuid.UUID, actor: User, domain: str) -> TeamDomain:
    membership = membership_in_team(user=actor, team_id=team_id)
    require_managing_role(membership)
    domain = domain_clean(domain)
    try:
        with transaction.atomic():
            return TeamDomain.objects.create(
                team_id=team_id, domain=domain, verification_token=secrets.token_urlsafe(24)
            )
    except IntegrityError as exc:
        raise ApplicationError(
            TeamsErrorCode.DOMAIN_TAKEN, f"{domain} is already claimed by a team.", status=409
        ) from exc


def _team_domain(team_id: uuid.UUID, domain_id: uuid.UUID) -> TeamDomain:
    row = TeamDomain.objects.filter(team_id=team_id, pk=domain_id).first()
    if row is None:
        raise NotFoundError("Domain")
    return row


def domain_verify_dns(
    *, team_id: uuid.UUID, actor: User, domain_id: uuid.UUID, resolve: TxtResolver | None = None
) -> TeamDomain:
    """Prove the domain by its TXT record; 409 ``domain_not_proven`` (naming the record) when absent."""
    membership = membership_in_team(user=actor, team_id=team_id)
    require_managing_role(membership)
    row = _team_domain(team_id, domain_id)
    if row.is_verified:
        return row
    published = {value.strip() for value in (resolve or dns_txt_records)(row.domain)}
    if row.txt_record not in published:
        raise ApplicationError(
            TeamsErrorCode.DOMAIN_NOT_PROVEN,
            f"No TXT record '{row.txt_record}' at {row.domain} yet; DNS changes can take a while.",
            status=409,
            extra={"txt_record": row.txt_record},
        )
    return _verified(row, by="dns", actor=actor)


def domain_verify_by_staff(*, domain: TeamDomain, staff: User) -> TeamDomain:
    return _verified(domain, by="staff", actor=staff)


def _verified(row: TeamDomain, *, by: str, actor: User | None) -> TeamDomain:
    with transaction.atomic():
        row.verified_at = timezone.now()
        row.verified_by = by
        row.save(update_fields=["verified_at", "verified_by", "updated_at"])
        audit_record(
            action=AuditAction.TEAM_DOMAIN_VERIFIED,
            actor=actor,
            target=row,
            data={"domain": row.domain, "team_id": str(row.team_id), "by": by},
        )
    return row


def domain_remove(*, team_id: uuid.UUID, actor: User, domain_id: uuid.UUID) -> None:
    membership = membership_in_team(user=actor, team_id=team_id)
    require_managing_role(membership)
    _team_domain(team_id, domain_id).delete()


def team_for_verified_domain(*, email: str) -> Team | None:
    """The team that proved the domain of ``email`` (for SSO joining), if any."""
    domain = email.rsplit("@", 1)[-1].lower()
    row = TeamDomain.objects.select_related("team").filter(domain=domain, verified_at__isnull=False).first()
    return row.team if row is not None else None
