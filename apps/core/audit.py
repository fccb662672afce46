"""The audit trail: who did what to what, and when, for decisions people (or webhooks) make.

``audit_record(...)`` is called by the service that owns the decision, inside its transaction,
so a rolled-back change leaves no audit row. Rows are never updated or deleted by the app.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.db import models

from .models import AuditEvent


class AuditAction(StrEnum):
    """Every audited action; apps add members here as their decisions land."""

    TIER_CHANGED = "tier.changed"
    SESSION_REVOKED = "session.revoked"
    MASTER_KEYS_ROTATED = "master_keys.rotated"
    PLUGIN_SUBMITTED = "plugin.submitted"
    PLUGIN_APPROVED = "plugin.approved"
    PLUGIN_REJECTED = "plugin.rejected"
    PLUGIN_SUSPENDED = "plugin.suspended"
    PLUGIN_REINSTATED = "plugin.reinstated"
    GRANT_CONNECTED = "grant.connected"
    GRANT_REVOKED = "grant.revoked"
    GRANT_NEEDS_RECONNECT = "grant.needs_reconnect"
    ACCOUNT_DELETION_REQUESTED = "account.deletion_requested"
    ACCOUNT_ERASED = "account.erased"
    TEAM_SEATS_GRANTED = "team.seats_granted"
    TEAM_OWNERSHIP_TRANSFERRED = "team.ownership_transferred"
    TEAM_SSO_ENFORCED = "team.sso_enforced"
    TEAM_DOMAIN_VERIFIED = "team.domain_verified"
    TEAM_IDENTITY_PROVIDER_SET = "team.identity_provider_set"
    TEAM_IDENTITY_PROVIDER_REMOVED = "team.identity_provider_removed"
    AGENT_PAUSED = "agent.paused"
    AGENT_RESUMED = "agent.resumed"
    STORAGE_READ_ONLY = "storage.read_only"
    STORAGE_WRITABLE = "storage.writable"
    LLM_BUDGET_OVERRIDDEN = "llm_budget.overridden"


def audit_record(
    *,
    action: AuditAction,
    actor: Any | None,
    target: models.Model | None = None,
    subject_user: Any | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit row. ``actor`` is the user who decided (None: the system, e.g. a webhook);
    ``subject_user`` the account affected; ``target`` the row acted on; ``data`` small, non-secret facts."""
    return AuditEvent.objects.create(
        action=str(action),
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        subject_user=subject_user,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        data=data or {},
    )
