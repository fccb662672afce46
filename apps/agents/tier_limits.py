"""Enabled agents follow the plan: over ``batch_active`` after a downgrade, the most recently
enabled are paused (``paused_reason = tier_limit``); when the plan allows more again, they resume,
earliest enabled first. Every pause and resume is audited."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models.functions import Coalesce

from apps.accounts.models import User
from apps.billing.tiers import Feature, feature_limit
from apps.core.audit import AuditAction, audit_record

from .configs import next_run_at_for
from .lock_objects import user_agents_lock
from .models import CloudAgentConfig, LocalAgentConfig, PausedReason

AgentConfigModel = LocalAgentConfig | CloudAgentConfig


def _configs(user_id: uuid.UUID, **filters: object) -> list[AgentConfigModel]:
    configs: list[AgentConfigModel] = []
    for model in (LocalAgentConfig, CloudAgentConfig):
        configs.extend(
            model.objects.select_for_update()
            .filter(user_id=user_id, **filters)
            .annotate(switched_on_at=Coalesce("enabled_at", "created_at"))
        )
    # Oldest switched on first; ties by id so the order is stable.
    return sorted(configs, key=lambda config: (config.switched_on_at, str(config.pk)))  # type: ignore[union-attr]


def agents_fit_tier(*, user_id: uuid.UUID) -> tuple[int, int]:
    """Pause or resume the user's agents to fit their plan's ``batch_active``; returns (paused, resumed)."""
    with transaction.atomic():
        user_agents_lock(user_id=user_id)
        user = User.objects.get(pk=user_id)
        limit = feature_limit(user, Feature.BATCH_ACTIVE)
        enabled = _configs(user_id, enabled=True)
        paused = resumed = 0
        if limit is not None and len(enabled) > limit:
            for config in reversed(enabled[limit:]):  # the most recently enabled first
                config.enabled = False
                config.paused_reason = PausedReason.TIER_LIMIT
                config.next_run_at = None
                config.save(update_fields=["enabled", "paused_reason", "next_run_at", "updated_at"])
                _audit(AuditAction.AGENT_PAUSED, user=user, config=config, limit=limit)
                paused += 1
            return paused, resumed
        room = None if limit is None else limit - len(enabled)
        for config in _configs(user_id, enabled=False, paused_reason=PausedReason.TIER_LIMIT):
            if room is not None and room <= 0:
                break
            config.enabled = True
            config.paused_reason = PausedReason.NONE
            config.next_run_at = next_run_at_for(config=config, time_zone=user.time_zone)
            config.save(update_fields=["enabled", "paused_reason", "next_run_at", "updated_at"])
            _audit(AuditAction.AGENT_RESUMED, user=user, config=config, limit=limit)
            resumed += 1
            room = None if room is None else room - 1
        return paused, resumed


def _audit(action: AuditAction, *, user: User, config: AgentConfigModel, limit: int | None) -> None:
    audit_record(
        action=action,
        actor=None,
        subject_user=user,
        target=config,
        data={"reason": PausedReason.TIER_LIMIT.value, "tier": user.tier, "batch_active": limit},
    )
