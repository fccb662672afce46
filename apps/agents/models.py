"""Agent configs (local folder / cloud mailbox), their runs, and the per-device delivery outbox."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.accounts.sealed_fields import SealedJSONField, SealedTextField
from apps.connectors.providers import Provider
from apps.core.models import BaseModel


class AgentType(models.TextChoices):
    LOCAL = "local", "Local directory"
    CLOUD = "cloud", "Cloud connector"


class DataType(models.TextChoices):
    """Client tables an agent may propose rows for."""

    TASKS = "tasks", "Tasks"
    NOTES = "notes", "Notes"
    TIMELINES = "timelines", "Timelines"
    PROJECTS = "projects", "Projects"


class PausedReason(models.TextChoices):
    NONE = "", "Not paused"
    TIER_LIMIT = "tier_limit", "Over the plan's enabled agents"
    DEVICE_FORGOTTEN = "device_forgotten", "Its device was removed from the account"


class AgentConfig(BaseModel):
    """What both kinds of agent share. ``next_run_at`` is the next due time of ``schedule_cron`` in
    the owner's time zone (UTC instant); the scheduler claims rows by it, so it is indexed.
    ``name`` and ``prompt_template`` are user content: sealed with the owner's key."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = SealedTextField(max_length=200)
    data_types = models.JSONField(default=list)
    prompt_template = SealedTextField(blank=True, default="")
    schedule_cron = models.CharField(max_length=120, blank=True, default="")  # empty: manual runs only
    enabled = models.BooleanField(default=True)
    # When it was last switched on: a downgrade pauses the most recently enabled first.
    enabled_at = models.DateTimeField(null=True, blank=True)
    # Why the server switched it off; ``tier_limit`` ones switch back on when the plan allows again.
    paused_reason = models.CharField(max_length=16, choices=PausedReason.choices, blank=True, default="")
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        abstract = True


class LocalAgentConfig(AgentConfig):
    """Reads folders on one device (``device_id``, the client's install id)."""

    device_id = models.CharField(max_length=128)
    directory_paths = models.JSONField(default=list)
    file_extensions = models.JSONField(default=list)
    # Set when a scheduled run came due while the device was offline (the earliest such due
    # time): the run is owed, and starts when the device says hello (``agents_due_for_device``).
    # The scheduler moves ``next_run_at`` on, so a long-offline device is not rescanned every tick.
    waiting_for_device_since = models.DateTimeField(null=True, blank=True)

    class Meta(AgentConfig.Meta):
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="agents_local_due_idx"),
            models.Index(fields=["user", "device_id"], name="agents_local_device_idx"),
        ]

    def __str__(self) -> str:
        return f"local agent {self.name}"


class CloudAgentConfig(AgentConfig):
    """Reads the user's mailbox / Teams through their OAuth grant for ``provider``."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    filter_config = SealedJSONField(default=dict, blank=True)  # senders, subjects: user content
    # Provider position after the last successful run ("since last run"): Gmail historyId, Graph deltaLink.
    sync_cursor = models.JSONField(default=dict, blank=True)

    class Meta(AgentConfig.Meta):
        indexes = [models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="agents_cloud_due_idx")]

    def __str__(self) -> str:
        return f"{self.provider} agent {self.name}"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    PARTIAL = "partial", "Partial"
    ERROR = "error", "Error"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"
    DEVICE_CONNECT = "device_connect", "Device connected"


class AgentRunLog(models.Model):
    """One run of an agent. At most one ``running`` row per agent: a partial unique index, so two
    beats or two workers can never run the same agent at once, whatever their locks do."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    agent_id = models.UUIDField()
    agent_type = models.CharField(max_length=8, choices=AgentType.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.MANUAL)
    # The minute this run was due (scheduled runs); with agent_id it makes a beat tick delivered twice a no-op.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    device_id = models.CharField(max_length=128, blank=True, default="")
    items_processed = models.IntegerField(default=0)
    items_created = models.IntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # A running run is owned until this instant; the sweeper marks it ``error`` after that.
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent_id"], condition=Q(status="running"), name="agents_run_one_running_per_agent"
            ),
            models.UniqueConstraint(
                fields=["agent_id", "scheduled_for"],
                condition=Q(scheduled_for__isnull=False),
                name="agents_run_once_per_due_time",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "agent_id", "-started_at"], name="agents_run_agent_idx"),
            # The list of all the user's runs, newest first: a page reads its own rows by index.
            models.Index(fields=["user", "-started_at"], name="agents_run_user_started_idx"),
            models.Index(fields=["lease_expires_at"], condition=Q(status="running"), name="agents_run_lease_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.id} of {self.agent_type} agent {self.agent_id} ({self.status})"


class AgentRunTally(models.Model):
    """How many runs an agent of the user has had: what the runs list's ``X-Total-Count`` reads
    instead of counting the runs, which only grow. PostgreSQL's triggers keep it on every insert and
    delete of a run (``apps.core.tallies``, migration 0010; a run's user and agent never change, so
    its many updates fire none); nothing else writes it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    agent_id = models.UUIDField()
    runs = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "agent_id"], name="agents_run_tally_unique")]

    def __str__(self) -> str:
        return f"agent {self.agent_id}: {self.runs} runs"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # the device refused it (a client error); not retried


class OutboxItem(BaseModel):
    """One row to insert on a device, written here before any delivery attempt.

    ``id`` doubles as the row id on the device (the server chooses it), so a redelivery after a
    lost acknowledgement is an insert of an id the client already has: done, not duplicated.
    ``device_id`` empty means "any online device of the user" (cloud runs). ``delivering_until``
    holds the item for the delivery that claimed it (the run's own, or the device's hello flush),
    so another one running at the same time skips it instead of inserting it again.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(AgentRunLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="outbox")
    device_id = models.CharField(max_length=128, blank=True, default="")
    table = models.CharField(max_length=16, choices=DataType.choices)
    # The row to insert, encrypted with the user's key (it is user content).
    payload_ciphertext = models.BinaryField()
    status = models.CharField(max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.IntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Released when the attempt ends; runs out by itself when the delivering process died.
    delivering_until = models.DateTimeField(null=True, blank=True)
    # The node (event loop, ``apps.devices.node``) of the hello flush holding the item, "" for a run's
    # own delivery: a flush that finds that node dead takes the item over without waiting the hold out.
    delivering_node = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["user", "device_id", "created_at"],
                condition=Q(status="pending"),
                name="agents_outbox_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"outbox {self.table} {self.id} ({self.status})"
