"""The durable per-device outbox: every extracted row is written to PostgreSQL first, then inserted
on a device; nothing is lost on a disconnect, and nothing is inserted twice.

``outbox_items_create`` stores rows (encrypted with the user's key) before any delivery attempt.
``outbox_deliver`` inserts them with ``call_device(action="insert")``, the row id being the
outbox item's id (the server chooses it), so a redelivery after a lost acknowledgement is an
insert of an id the client already has: the client answers with the existing row, or refuses the
repeated id (SQLite's unique error), in which case a ``get`` of the id finds the row delivered. An item
whose ``device_id`` is empty (cloud runs) goes to any online device: it is bound to one device
just before its insert (a single UPDATE, so two devices never both get it) and unbound again
if that device drops before answering. ``OutboxDelivery`` keeps a window of inserts in flight and
records their acknowledgements a batch at a time. ``outbox_flush_for_device`` delivers whatever
waits for a device when it says hello.

A run delivers its items while it runs, and the device's hello flush may run at the same moment
(in another process): the flush leaves a running run's items to the run (which counts them before it
finishes), and each claim holds its items for its delivery (``delivering_until``), so another one
skips them rather than inserting them a second time; whoever delivers an item counts it on its run.
A delivery releases what it did not deliver when it stops (a hello flush also when its socket closes
under it); a hold left by a process that died runs out after ``DELIVERY_HOLD_CALLS`` call timeouts,
or at once when the holder was a run whose lease ran out (its worker died: the hello flush takes its
items, and the sweeper releases them as it ends the run) or a hello flush whose node's liveness key
has lapsed (its process died: the next flush takes them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from apps.accounts.keys import decrypt_for_user, user_fernet
from apps.core.group_commit import GroupCommit
from apps.devices.errors import DeviceCallError, DeviceToolError
from apps.devices.node import loop_node, node_alive
from apps.devices.services import call_device

from .extraction import ProposedItem
from .models import AgentRunLog, OutboxItem, OutboxStatus, RunStatus

logger = logging.getLogger(__name__)

FLUSH_BATCH = 200
# How long a claim holds its items, in device call timeouts: a delivery stops at its first call that
# times out, so a live one attempts its batch well within this; a dead one's items wait this long.
DELIVERY_HOLD_CALLS = 4
# A delivery's acknowledgements are written at most this often (each batch one statement).
ACKS_PACE_SECONDS = 0.01


@dataclass
class DeliveryReport:
    delivered: int = 0  # acknowledged by the device (first acknowledgement of each item)
    failed: list[str] = field(default_factory=list)  # refused by the device: not retried
    undelivered: int = 0  # still pending (device offline, dropped, or too slow)
    device_error: str = ""  # why delivery stopped early, if it did


class PendingItem:
    """An outbox row opened for delivery (payload decrypted in memory only)."""

    __slots__ = ("bound", "data", "id", "run_id", "table")

    def __init__(self, *, id: uuid.UUID, run_id, table: str, data: dict, bound: bool) -> None:
        self.id = id
        self.run_id = run_id
        self.table = table
        self.data = data
        self.bound = bound  # True when this delivery bound an "any device" item to the device


# --- writes (sync; call through database_sync_to_async from async code) --------------------------


def outbox_items_create(
    *, user_id, run_id, device_id: str, items: Iterable[tuple[uuid.UUID, ProposedItem]]
) -> list[uuid.UUID]:
    """Store rows to insert on ``device_id`` ('' = any device of the user); returns the ids stored.

    Ids are chosen by the caller (deterministic per source, so re-extracting the same file or
    message proposes the same ids); an id already in the outbox is kept as it is, not duplicated.
    """
    return [item.id for item in outbox_items_store(user_id=user_id, run_id=run_id, device_id=device_id, items=items)]


def outbox_items_store(
    *, user_id, run_id, device_id: str, items: Iterable[tuple[uuid.UUID, ProposedItem]]
) -> list[PendingItem]:
    """As ``outbox_items_create``, answering the rows stored as items ready to deliver: their data is
    in hand, so a run delivers them without reading them back and decrypting them."""
    fresh: dict[uuid.UUID, ProposedItem] = {}
    for item_id, item in items:
        fresh.setdefault(item_id, item)
    if not fresh:
        return []
    fernet = user_fernet(user_id=user_id)  # one key for the batch
    now = timezone.now()
    rows = [
        (
            item_id,
            # A microsecond apart: the batch keeps its order in the outbox (deliveries go by created_at).
            now + timedelta(microseconds=i),
            now,
            user_id,
            run_id,
            device_id,
            item.table,
            fernet.encrypt(json.dumps(item.data).encode()),
            OutboxStatus.PENDING.value,
        )
        for i, (item_id, item) in enumerate(fresh.items())
    ]
    stored: set[uuid.UUID] = set()
    with connection.cursor() as cursor:
        for chunk in range(0, len(rows), STORE_CHUNK):
            part = rows[chunk : chunk + STORE_CHUNK]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, '', '')"] * len(part))
            cursor.execute(_ITEMS_STORE.format(values=values), [value for row in part for value in row])
            stored.update(item_id for (item_id,) in cursor.fetchall())
    return [
        PendingItem(id=item_id, run_id=run_id, table=item.table, data=dict(item.data), bound=False)
        for item_id, item in fresh.items()
        if item_id in stored
    ]


# Raw SQL on the outbox's table, one statement per chunk and no look-up first: an id already in the
# outbox (stored by an earlier extraction of the same source, pending or delivered) is left as it is,
# and RETURNING names the rows this batch added, the only ones its run delivers. Every column is
# named (Django keeps no database defaults: a new NOT NULL field goes here too); the table name is
# the model's and every value is bound.
STORE_CHUNK = 1000
_ITEMS_STORE = (
    f"INSERT INTO {OutboxItem._meta.db_table} "  # noqa: S608
    '(id, created_at, updated_at, user_id, run_id, device_id, "table", payload_ciphertext, status, attempts, '
    "last_error, delivering_node) VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id"
)


def _open(item: OutboxItem, *, bound: bool) -> PendingItem:
    data = json.loads(decrypt_for_user(user_id=item.user_id, token=bytes(item.payload_ciphertext)))
    return PendingItem(id=item.id, run_id=item.run_id, table=item.table, data=data, bound=bound)


def outbox_waiting_for(*, devices: Iterable[tuple[uuid.UUID | str, str]]) -> set[tuple[str, str]]:
    """Which of these (user_id, device_id) pairs have pending items (their own or a user's "any
    device" ones), in one query: the hellos of a reconnect storm skip the flush when none wait."""
    pairs = {(str(user_id), device_id) for user_id, device_id in devices}
    if not pairs:
        return set()
    waiting = set(
        OutboxItem.objects.filter(user_id__in={user_id for user_id, _ in pairs}, status=OutboxStatus.PENDING)
        .values_list("user_id", "device_id")
        .distinct()
    )
    owed = {(str(user_id), device_id) for user_id, device_id in waiting}
    return {(user_id, device_id) for user_id, device_id in pairs if {(user_id, device_id), (user_id, "")} & owed}


def outbox_claim(
    *,
    user_id,
    device_id: str,
    item_ids: list[uuid.UUID] | None = None,
    run_id=None,
    limit: int = FLUSH_BATCH,
    of_running_runs: bool = True,
    node: str = "",
    dead_nodes: Collection[str] = (),
) -> list[PendingItem]:
    """Pending items for ``device_id`` (its own and "any device" ones, the latter bound to it now),
    held for this delivery: items another delivery holds are left to it. ``of_running_runs=False``
    leaves the items of runs still running to those runs, which deliver and count them themselves
    (but not those of a run whose lease ran out: its worker is gone). ``node``: the node of the hello
    flush claiming, recorded with the hold; the holds of ``dead_nodes`` are taken over."""
    now = timezone.now()
    running = AgentRunLog.objects.filter(user_id=user_id, status=RunStatus.RUNNING)
    # A running run whose lease ran out has lost its worker (nothing renews it); the sweeper will end
    # it. Only that run's executor holds its items, so their holds died with it, and no run will
    # deliver them: they are anyone's now.
    orphaned = running.filter(lease_expires_at__lt=now).values("id")
    free = Q(delivering_until__isnull=True) | Q(delivering_until__lt=now) | Q(run_id__in=orphaned)
    if dead_nodes:
        free |= Q(delivering_node__in=list(dead_nodes))
    qs = OutboxItem.objects.filter(user_id=user_id, status=OutboxStatus.PENDING).filter(
        Q(device_id=device_id) | Q(device_id=""), free
    )
    if item_ids is not None:
        qs = qs.filter(id__in=item_ids)
    if run_id is not None:
        qs = qs.filter(run_id=run_id)
    if not of_running_runs:
        alive = running.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__gte=now)).values("id")
        qs = qs.filter(Q(run_id__isnull=True) | ~Q(run_id__in=alive))
    with transaction.atomic():
        # Rows a concurrent claim is taking are skipped, not waited for: they are that claim's.
        items = list(qs.select_for_update(skip_locked=True).order_by("created_at")[:limit])
        if items:
            OutboxItem.objects.filter(id__in=[item.id for item in items]).update(
                delivering_until=now + timedelta(seconds=settings.DEVICE_TOOL_CALL_TIMEOUT * DELIVERY_HOLD_CALLS),
                delivering_node=node,
                device_id=Case(When(device_id="", then=Value(device_id)), default=F("device_id")),
            )
    return [_open(item, bound=item.device_id == "") for item in items]


def outbox_item_delivered(*, item_id: uuid.UUID, run_id) -> bool:
    """Mark delivered; count it on its run once (a second acknowledgement changes nothing)."""
    return outbox_items_delivered(acks=[(item_id, run_id)])[0]


def outbox_items_delivered(*, acks: list[tuple[uuid.UUID, Any]]) -> list[bool]:
    """Mark a batch of (item id, run id) acknowledgements delivered in one statement; per ack, True
    for its item's first acknowledgement, False for a repeat. A first acknowledgement is counted on
    the run the outbox row names (the ack's run id is the same, as its delivery read it from the row)."""
    if not acks:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_ITEMS_DELIVERED, [[item_id for item_id, _ in acks], timezone.now()])
        first = {item_id for (item_id,) in cursor.fetchall()}
    answers = []
    for item_id, _run_id in acks:
        answers.append(item_id in first)
        first.discard(item_id)  # an id acknowledged twice in one batch counts once
    return answers


# Raw SQL on the outbox's and the run log's tables (the models' names, statuses as stored).
# One statement (atomic on its own, one round trip): the pending items are locked in id order, so two
# batches sharing items (a run's delivery, a hello flush) never deadlock, and a row another batch
# delivered meanwhile is re-checked and skipped; only they are marked delivered and counted on their
# run. The content now lives on the device: only the id is kept (a later proposal of the same item is
# recognised as done) until outbox_prune removes the row.
_ITEMS_DELIVERED = f"""
    WITH locked AS (
        SELECT id FROM {OutboxItem._meta.db_table}
        WHERE id = ANY(%s::uuid[]) AND status = 'pending'
        ORDER BY id FOR UPDATE
    ), first AS (
        UPDATE {OutboxItem._meta.db_table} AS item
        SET status = 'delivered', delivered_at = %s, attempts = item.attempts + 1,
            last_error = '', payload_ciphertext = ''::bytea
        FROM locked WHERE item.id = locked.id
        RETURNING item.id, item.run_id
    ), counted AS (
        UPDATE {AgentRunLog._meta.db_table} AS run SET items_created = run.items_created + per_run.n
        FROM (SELECT run_id, count(*) AS n FROM first WHERE run_id IS NOT NULL GROUP BY run_id) AS per_run
        WHERE run.id = per_run.run_id
    )
    SELECT id FROM first
"""  # noqa: S608


def outbox_item_attempt_failed(*, item_id: uuid.UUID, error: str, refused: bool, unbind: bool) -> None:
    """Record a failed attempt: ``refused`` (the client's error) is final; anything else stays pending."""
    changes: dict = {"attempts": F("attempts") + 1, "last_error": error[:255], "delivering_until": None}
    if refused:
        changes["status"] = OutboxStatus.FAILED
    elif unbind:
        changes["device_id"] = ""  # an "any device" item goes back to waiting for any device
    OutboxItem.objects.filter(id=item_id, status=OutboxStatus.PENDING).update(**changes)


def outbox_prune(*, batch_size: int = 5000) -> int:
    """Delete rows delivered (or refused by the device) more than AGENTS_OUTBOX_RETAIN_DAYS ago, in
    batches; returns how many. Pending rows are never pruned.

    Until then a delivered row (its payload already dropped) makes a re-extracted item a no-op;
    after it, a source re-read from further back than that would be proposed again, which is why
    the retention is longer than any connector's look-back.
    """
    cutoff = timezone.now() - timedelta(days=settings.AGENTS_OUTBOX_RETAIN_DAYS)
    deleted = 0
    while True:
        ids = list(
            OutboxItem.objects.filter(
                Q(status=OutboxStatus.DELIVERED, delivered_at__lt=cutoff)
                | Q(status=OutboxStatus.FAILED, created_at__lt=cutoff)
            ).values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += OutboxItem.objects.filter(id__in=ids).delete()[0]


# --- delivery (async) -------------------------------------------------------------------------


class OutboxDelivery:
    """Inserts items on one device as they are added, AGENTS_DELIVERY_CONCURRENCY in flight, and
    writes the acknowledgements in batches (``GroupCommit``) without holding up the next insert.

    At the first sign that the device is gone it stops: what is left stays pending for the device's
    next hello. ``close`` waits for the inserts and acknowledgements under way and reports.
    """

    def __init__(self, *, user_id, device_id: str, on_delivered: Callable[[int], None] | None = None) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.report = DeliveryReport()
        self.on_delivered = on_delivered
        self._queue: deque[PendingItem] = deque()
        self._workers: set[asyncio.Task] = set()
        self._acking: set[asyncio.Future[bool]] = set()
        # On a thread of their own: a run's acknowledgements then never queue behind the stores of the
        # items it is still extracting (nor they behind them), which share the run's ORM thread. Paced:
        # nothing waits on an acknowledgement to go on, and a statement per ~3 acknowledgements (a
        # flush's round trip at full speed) cost the delivery about a third of its inserts per second.
        self._acks: GroupCommit[tuple[uuid.UUID, Any], bool] = GroupCommit(
            _acks_write, own_thread=True, pace_seconds=ACKS_PACE_SECONDS
        )

    @property
    def gone(self) -> bool:
        return bool(self.report.device_error)

    def add(self, items: Iterable[PendingItem]) -> None:
        self._queue.extend(items)
        window = max(1, settings.AGENTS_DELIVERY_CONCURRENCY)
        # Only workers still running count: one that has ended stays in the set until its done-callback
        # runs, and items added meanwhile would wait for a worker nobody starts.
        working = sum(not worker.done() for worker in self._workers)
        while not self.gone and working < min(window, len(self._queue)):
            task = asyncio.ensure_future(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
            working += 1

    async def _work(self) -> None:
        while self._queue and not self.gone:
            item = self._queue.popleft()
            try:
                await _insert(user_id=self.user_id, device_id=self.device_id, item=item)
            except DeviceToolError as exc:
                self.report.failed.append(f"{item.table} {item.id}: the device refused it: {exc.message}")
                await database_sync_to_async(outbox_item_attempt_failed)(
                    item_id=item.id, error=exc.message, refused=True, unbind=False
                )
                continue
            except DeviceCallError as exc:
                self.report.device_error = self.report.device_error or f"{exc.code}: {exc.message}"
                self._queue.appendleft(item)
                await database_sync_to_async(outbox_item_attempt_failed)(
                    item_id=item.id, error=f"{exc.code}: {exc.message}", refused=False, unbind=item.bound
                )
                return
            ack = self._acks.submit((item.id, item.run_id))
            self._acking.add(ack)
            ack.add_done_callback(self._acked)

    def _acked(self, ack: asyncio.Future[bool]) -> None:
        self._acking.discard(ack)
        if ack.cancelled():
            return
        if ack.exception() is not None:
            # The item stays pending: delivered again later and recognised there by its id.
            logger.warning("agents: could not record an acknowledged insert: %s", type(ack.exception()).__name__)
            return
        if not ack.result():
            return
        self.report.delivered += 1
        if self.on_delivered is not None:
            self.on_delivered(1)

    async def close(self) -> DeliveryReport:
        while self._workers:
            await asyncio.gather(*list(self._workers))
        if self._acking:
            await asyncio.gather(*list(self._acking))
        self.report.undelivered = len(self._queue)
        if self._queue:
            # Items never attempted are released now (the next hello takes them), and those bound to
            # this device go back to "any device" too.
            await database_sync_to_async(_release)(items=list(self._queue))
        return self.report


def _acks_write(acks: list[tuple[uuid.UUID, Any]]) -> list[bool]:
    return outbox_items_delivered(acks=acks)


async def outbox_deliver(*, user_id, device_id: str, items: list[PendingItem]) -> DeliveryReport:
    """Insert ``items`` on the device, AGENTS_DELIVERY_CONCURRENCY at a time; stop at the first
    sign that the device is gone (the rest stays pending for its next hello)."""
    delivery = OutboxDelivery(user_id=user_id, device_id=device_id)
    delivery.add(items)
    return await delivery.close()


async def _insert(*, user_id, device_id: str, item: PendingItem) -> None:
    """Insert the item's row under its outbox id. The desktop app's SQLite refuses an id it already
    holds (an earlier insert landed and its answer was lost), so a refusal is looked up: if the row
    is there, the item was delivered; otherwise the refusal stands."""
    try:
        await call_device(
            user_id=user_id,
            device_id=device_id,
            action="insert",
            table=item.table,
            data={"id": str(item.id), **item.data},
        )
    except DeviceToolError as refusal:
        try:
            found = await call_device(
                user_id=user_id, device_id=device_id, action="get", table=item.table, data={"id": str(item.id)}
            )
        except DeviceToolError:
            raise refusal from None
        if not isinstance((found or {}).get("row"), dict):
            raise


def _release(*, items: list[PendingItem]) -> None:
    pending = OutboxItem.objects.filter(status=OutboxStatus.PENDING)
    pending.filter(id__in=[i.id for i in items if not i.bound]).update(delivering_until=None)
    pending.filter(id__in=[i.id for i in items if i.bound]).update(delivering_until=None, device_id="")


def outbox_holding_nodes(*, user_id, device_id: str) -> set[str]:
    """The nodes whose hello flushes hold pending items of this device right now."""
    return set(
        OutboxItem.objects.filter(
            user_id=user_id, status=OutboxStatus.PENDING, device_id=device_id, delivering_until__gte=timezone.now()
        )
        .exclude(delivering_node="")
        .values_list("delivering_node", flat=True)
        .distinct()
    )


async def _dead_holders(*, user_id, device_id: str) -> list[str]:
    """The nodes holding this device's items whose liveness key has lapsed: their process died."""
    holders = await database_sync_to_async(outbox_holding_nodes)(user_id=user_id, device_id=device_id)
    return [name for name in holders if not await node_alive(name)]


async def outbox_flush_for_device(*, user_id, device_id: str) -> DeliveryReport:
    """Deliver everything waiting for this device (on its hello), batch by batch, until none is left
    or the device drops again."""
    total = DeliveryReport()
    node = await loop_node()
    # A flush of a process that died holds its items until the hold runs out: taken over now.
    dead = await _dead_holders(user_id=user_id, device_id=device_id)
    while True:
        # A run still running delivers its own items (its final count and progress include them).
        items = await database_sync_to_async(outbox_claim)(
            user_id=user_id, device_id=device_id, of_running_runs=False, node=node.name, dead_nodes=dead
        )
        if not items:
            return total
        try:
            report = await outbox_deliver(user_id=user_id, device_id=device_id, items=items)
        except asyncio.CancelledError:
            # The socket went (its hello tasks go with it) mid-delivery: what this flush holds goes
            # back now, or the device's next hello would find it held by this live process until the
            # hold ran out, and nothing would deliver it before the hello after that.
            await asyncio.shield(database_sync_to_async(_release)(items=items))
            raise
        total.delivered += report.delivered
        total.failed += report.failed
        total.undelivered = report.undelivered
        total.device_error = report.device_error
        if report.device_error or report.delivered == 0:
            return total
