"""Writes of agent configs: create, update, delete local and cloud agents; their schedules.

Tier limits are counted under the user's agents lock, so two racing creates cannot both
pass: ``agents`` caps the number of configs (local + cloud), ``batch_active`` the number of
enabled ones (checked on create and when a config is switched on). A user over a limit after a
downgrade keeps what they have: reads, edits, disabling and deleting still work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.billing.tiers import Feature, require_below_limit
from apps.connectors.fetch import filter_config_validate
from apps.connectors.providers import Provider
from apps.core.errors import ApplicationError, CoreErrorCode, NotFoundError

from .error_codes import AgentsErrorCode
from .lock_objects import user_agents_lock
from .models import AgentRunLog, CloudAgentConfig, LocalAgentConfig, OutboxItem, OutboxStatus
from .schedules import ScheduleError, cron_validate, next_run_after
from .selectors import agent_counts

AgentConfigModel = LocalAgentConfig | CloudAgentConfig
_Config = TypeVar("_Config", LocalAgentConfig, CloudAgentConfig)

LOCAL_FIELDS = (
    "name",
    "device_id",
    "directory_paths",
    "data_types",
    "prompt_template",
    "file_extensions",
    "schedule_cron",
    "enabled",
)
CLOUD_FIELDS = ("provider", "name", "data_types", "prompt_template", "schedule_cron", "filter_config", "enabled")


def schedule_cron_clean(value: str) -> str:
    """'' (manual runs only) or a normalised 5-field cron; a 400 naming ``schedule_cron`` otherwise."""
    if not value or not str(value).strip():
        return ""
    try:
        return cron_validate(value)
    except ScheduleError as exc:
        raise ApplicationError(
            AgentsErrorCode.INVALID_SCHEDULE, f"schedule_cron: {exc}", fields={"schedule_cron": [str(exc)]}
        ) from None


def next_run_at_for(*, config: AgentConfigModel, time_zone: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """When an enabled, scheduled config is next due (None: disabled or manual-only)."""
    if not config.enabled or not config.schedule_cron:
        return None
    return next_run_after(expression=config.schedule_cron, time_zone=time_zone, after=now or timezone.now())


def _require_room(*, user: User, adding: bool, enabling: bool) -> None:
    """Must run inside a transaction holding the user's agents lock."""
    total, enabled = agent_counts(user=user)
    if adding:
        require_below_limit(user, Feature.AGENTS, current=total)
    if enabling:
        require_below_limit(user, Feature.BATCH_ACTIVE, current=enabled)


def _require_provider_room(*, user: User, provider: str) -> None:
    """``providers`` caps the distinct cloud providers the user's agents read from."""
    providers = set(CloudAgentConfig.objects.filter(user=user).values_list("provider", flat=True))
    if provider not in providers:
        require_below_limit(user, Feature.PROVIDERS, current=len(providers))


def _clean(*, model: type, data: dict[str, Any], provider: str | None = None) -> dict[str, Any]:
    data = dict(data)
    if "schedule_cron" in data:
        data["schedule_cron"] = schedule_cron_clean(data["schedule_cron"])
    if "data_types" in data:
        data["data_types"] = list(dict.fromkeys(data["data_types"]))  # unique, in the client's order
    if model is CloudAgentConfig and "provider" in data and data["provider"] not in Provider.values:
        reason = f"'{data['provider']}' is not a provider; one of {', '.join(Provider.values)}."
        raise ApplicationError(CoreErrorCode.VALIDATION_ERROR, f"provider: {reason}", fields={"provider": [reason]})
    if model is CloudAgentConfig and "filter_config" in data:
        data["filter_config"] = filter_config_validate(
            provider=provider or "", filter_config=data["filter_config"] or {}
        )
    return data


def _create(*, user: User, model: type[_Config], data: dict[str, Any]) -> _Config:
    data = _clean(model=model, data=data, provider=data.get("provider"))
    with transaction.atomic():
        user_agents_lock(user_id=user.id)
        _require_room(user=user, adding=True, enabling=data.get("enabled", True))
        if model is CloudAgentConfig:
            _require_provider_room(user=user, provider=data["provider"])
        config = model(user=user, **data)
        config.next_run_at = next_run_at_for(config=config, time_zone=user.time_zone)
        config.save()
    return config


def _update(*, user: User, model: type[_Config], agent_id: uuid.UUID, data: dict[str, Any]) -> _Config:
    with transaction.atomic():
        user_agents_lock(user_id=user.id)
        config = model.objects.select_for_update().filter(user=user, id=agent_id).first()
        if config is None:
            raise NotFoundError("Agent")
        data = _clean(model=model, data=data, provider=getattr(config, "provider", None))
        enabling = bool(data.get("enabled")) and not config.enabled
        _require_room(user=user, adding=False, enabling=enabling)
        schedule_changed = any(
            data.get(key, getattr(config, key)) != getattr(config, key) for key in ("schedule_cron", "enabled")
        )
        for key, value in data.items():
            setattr(config, key, value)
        if schedule_changed:
            config.next_run_at = next_run_at_for(config=config, time_zone=user.time_zone)
            if isinstance(config, LocalAgentConfig) and not config.enabled:
                config.waiting_for_device_since = None  # a disabled agent owes no run
        if enabling and isinstance(config, LocalAgentConfig):
            config.paused_reason = ""
        config.save()
    return config


def _delete(*, user: User, model: type[AgentConfigModel], agent_id: uuid.UUID) -> None:
    with transaction.atomic():
        deleted, _ = model.objects.filter(user=user, id=agent_id).delete()
        if not deleted:
            raise NotFoundError("Agent")
        AgentRunLog.objects.filter(user=user, agent_id=agent_id).delete()


def local_agent_create(*, user: User, **data: Any) -> LocalAgentConfig:
    return _create(user=user, model=LocalAgentConfig, data=_only(data, LOCAL_FIELDS))


def local_agent_update(*, user: User, agent_id: uuid.UUID, **data: Any) -> LocalAgentConfig:
    return _update(user=user, model=LocalAgentConfig, agent_id=agent_id, data=_only(data, LOCAL_FIELDS))


def local_agent_delete(*, user: User, agent_id: uuid.UUID) -> None:
    _delete(user=user, model=LocalAgentConfig, agent_id=agent_id)


def cloud_agent_create(*, user: User, **data: Any) -> CloudAgentConfig:
    return _create(user=user, model=CloudAgentConfig, data=_only(data, CLOUD_FIELDS))


def cloud_agent_update(*, user: User, agent_id: uuid.UUID, **data: Any) -> CloudAgentConfig:
    """Update the fields given. The provider is fixed at creation (its grant and the providers
    limit depend on it): a ``provider`` among them is ignored, since clients send the whole
    config back on an update."""
    data.pop("provider", None)
    return _update(user=user, model=CloudAgentConfig, agent_id=agent_id, data=_only(data, CLOUD_FIELDS[1:]))


def cloud_agent_delete(*, user: User, agent_id: uuid.UUID) -> None:
    _delete(user=user, model=CloudAgentConfig, agent_id=agent_id)


def _only(data: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    unknown = set(data) - set(fields)
    if unknown:
        raise TypeError(f"unknown agent config fields: {sorted(unknown)}")
    return data


def agent_schedules_recompute(*, user_id: uuid.UUID, now: dt.datetime | None = None) -> int:
    """Recompute ``next_run_at`` of every enabled, scheduled config of the user (after a time zone change)."""
    now = now or timezone.now()
    user = User.objects.get(id=user_id)
    changed = 0
    with transaction.atomic():
        user_agents_lock(user_id=user_id)
        for model in (LocalAgentConfig, CloudAgentConfig):
            for config in (
                model.objects.select_for_update().filter(user_id=user_id, enabled=True).exclude(schedule_cron="")
            ):
                config.next_run_at = next_run_at_for(config=config, time_zone=user.time_zone, now=now)
                config.save(update_fields=["next_run_at"])
                changed += 1
    return changed


def local_agents_release_device(*, user_id: uuid.UUID, device_id: str) -> int:
    """The device was forgotten: its local agents lose it and are paused, saying why; items waiting
    for it in the outbox go to any other device of the user. Returns how many agents were paused."""
    paused = LocalAgentConfig.objects.filter(user_id=user_id, device_id=device_id).update(
        device_id="",
        enabled=False,
        next_run_at=None,
        waiting_for_device_since=None,
        paused_reason=f"Its device {device_id[:100]} was removed from the account; choose another device.",
    )
    OutboxItem.objects.filter(user_id=user_id, device_id=device_id, status=OutboxStatus.PENDING).update(device_id="")
    return paused


def local_agents_by_device(user_id: uuid.UUID) -> dict[str, list[str]]:
    """``{device_id: [agent id, ...]}`` of the user's local agents (the devices listing asks)."""
    found: dict[str, list[str]] = {}
    for agent_id, device_id in LocalAgentConfig.objects.filter(user_id=user_id).values_list("id", "device_id"):
        if device_id:
            found.setdefault(device_id, []).append(str(agent_id))
    return found
