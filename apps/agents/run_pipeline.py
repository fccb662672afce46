"""What local and cloud runs share: source → extraction → outbox → delivery, the run's error list,
its lease, and how a run is finished (success / partial / error) on every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from channels.db import database_sync_to_async
from django.conf import settings

from apps.assistant.llm import ModelRole, chat_model
from apps.billing.metering import DeferredRecords, LlmCallRecord, llm_records_deferred, llm_usage_record_many
from apps.core.group_commit import GroupCommit

from .error_codes import AgentsErrorCode
from .extraction import Extraction, Extractor, ProposedItem, Source
from .models import AgentRunLog, CloudAgentConfig, LocalAgentConfig, RunStatus
from .outbox import DeliveryReport, OutboxDelivery, PendingItem, outbox_claim, outbox_deliver, outbox_items_store
from .progress import RunProgress
from .runs import run_finish, run_lease_renew

logger = logging.getLogger(__name__)

MAX_RUN_ERRORS = 100
# Outbox ids are derived from (agent, source, content, position): extracting the same file or
# message again proposes the same row ids, so it never inserts a suggestion twice.
ITEM_ID_NAMESPACE = uuid.UUID("5d1f3c62-8f0e-4f5b-9a53-0b8f2f0c7a11")


class RunErrors:
    """The run's error list, bounded (a folder of 10,000 oversized files must not make a 10,000-line log)."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.dropped = 0

    def add(self, code: str, message: str) -> None:
        if len(self.entries) < MAX_RUN_ERRORS:
            self.entries.append(f"{code}: {message}")
        else:
            self.dropped += 1

    def as_list(self) -> list[str]:
        return self.entries + ([f"… and {self.dropped} more"] if self.dropped else [])

    def __bool__(self) -> bool:
        return bool(self.entries)


def item_id(*, agent_id, source_key: str, content: str, index: int) -> uuid.UUID:
    """The outbox id of the item at ``index`` among those proposed for one source."""
    return uuid.uuid5(ITEM_ID_NAMESPACE, _item_id_prefix(agent_id, source_key, content) + str(index))


def item_ids(*, agent_id, source_key: str, content: str, count: int) -> list[uuid.UUID]:
    """``item_id`` of the source's first ``count`` items, its text hashed once, not once an item."""
    prefix = _item_id_prefix(agent_id, source_key, content)
    return [uuid.uuid5(ITEM_ID_NAMESPACE, prefix + str(index)) for index in range(count)]


def _item_id_prefix(agent_id, source_key: str, content: str) -> str:
    digest = hashlib.sha256(content.encode("utf-8", "replace")).hexdigest()
    return f"{agent_id}:{source_key}:{digest}:"


Keyed = tuple[Source, str]  # a source and its key (the file's path, the message's provider id)


def extraction_batches(
    sources: list[Keyed], *, max_chars: int, request_chars: int, max_files: int, spread: int = 1
) -> list[list[Keyed]]:
    """``sources`` in order, grouped into requests of at most ``max_files`` whose texts together fit
    ``request_chars``. A text longer than ``max_chars`` (what one file may show) goes alone, and is
    cut as ever; so does one too long for any request.

    ``spread`` (the run's extraction slots): a request holds at most ``ceil(len(sources) / spread)``
    files, so a few files go out as that many requests side by side rather than one. A model writes a
    request's answer one file after another, so one request of eight files takes about as long as
    eight requests one after another; batching saves the worker's CPU per request, and pays only once
    the slots are full."""
    if spread > 1 and sources:
        max_files = min(max_files, -(-len(sources) // spread))
    batches: list[list[Keyed]] = []
    batch: list[Keyed] = []
    chars = 0
    for keyed in sources:
        size = len(keyed[0].text)
        if size > max_chars or size > request_chars:
            if batch:
                batches.append(batch)
                batch, chars = [], 0
            batches.append([keyed])
            continue
        if batch and (len(batch) >= max_files or chars + size > request_chars):
            batches.append(batch)
            batch, chars = [], 0
        batch.append(keyed)
        chars += size
    if batch:
        batches.append(batch)
    return batches


DeliveryTarget = Callable[[], Awaitable[str | None]]  # the device to deliver to now, or None (wait)


class Stored(NamedTuple):
    """One request's items (of one source or several) under their outbox ids, and the usage of the
    model call that proposed them."""

    items: list[tuple[uuid.UUID, ProposedItem]]
    usage: list[LlmCallRecord]


def _usage_record_alone(*, records: list[LlmCallRecord]) -> None:
    try:
        llm_usage_record_many(records=records)
    except Exception:  # the operator sees it in the log, as for any call the meter could not record
        logger.exception("agents: could not record the usage of %d model call(s)", len(records))


class RunPipeline:
    """Extract sources concurrently (bounded), store every item in the outbox, deliver it.

    ``target`` names the device to deliver to at that moment (None: keep the items in the outbox).
    The items of sources extracted at about the same time are stored in one round trip, and flow
    into one delivery per device whose window stays full across sources. Once a delivery finds the
    device gone, later items are only stored, not attempted.
    """

    def __init__(
        self,
        *,
        run: AgentRunLog,
        config: LocalAgentConfig | CloudAgentConfig,
        outbox_device_id: str,
        target: DeliveryTarget,
    ) -> None:
        self.run = run
        self.config = config
        self.outbox_device_id = outbox_device_id
        self.target = target
        self.errors = RunErrors()
        self.items_processed = 0
        self.sources_failed = 0
        self.items_stored = 0
        self.delivery_stopped = ""
        self.progress = RunProgress(user_id=run.user_id, run_id=run.id, agent_id=config.id)
        self.model = chat_model(ModelRole.SUBAGENT)
        self.extractor = Extractor(
            model=self.model,
            prompt_template=config.prompt_template,
            data_types=list(config.data_types),
            max_chars=settings.AGENTS_EXTRACTION_MAX_CHARS,
        )
        self._slots = asyncio.Semaphore(settings.AGENTS_EXTRACTION_CONCURRENCY)
        self._tasks: set[asyncio.Task] = set()
        self._store: GroupCommit[Stored, list[PendingItem]] = GroupCommit(self._store_batch)
        self._deliveries: dict[str, OutboxDelivery] = {}

    def submit(self, source: Source, *, source_key: str) -> None:
        """Extract ``source`` in the background, in a request of its own (see ``drain``)."""
        self._start([(source, source_key)])

    def submit_files(self, sources: list[Keyed]) -> None:
        """Extract ``sources`` in the background, small ones several to a request
        (AGENTS_EXTRACTION_FILES_PER_REQUEST, within AGENTS_EXTRACTION_REQUEST_MAX_CHARS together,
        spread over the AGENTS_EXTRACTION_CONCURRENCY slots)."""
        for batch in extraction_batches(
            sources,
            max_chars=settings.AGENTS_EXTRACTION_MAX_CHARS,
            request_chars=settings.AGENTS_EXTRACTION_REQUEST_MAX_CHARS,
            max_files=max(1, settings.AGENTS_EXTRACTION_FILES_PER_REQUEST),
            spread=settings.AGENTS_EXTRACTION_CONCURRENCY,
        ):
            self._start(batch)

    def _start(self, batch: list[Keyed]) -> None:
        task = asyncio.ensure_future(self._process(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every submitted source, then for the deliveries under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        deliveries, self._deliveries = list(self._deliveries.values()), {}
        for delivery in deliveries:
            self._account(await delivery.close())

    async def _process(self, batch: list[Keyed]) -> None:
        # The call's usage is held here, not stored by the model client on its way back, and goes
        # into the database with the items it proposed (one batch for the sources extracted
        # together): every call is still metered on its own, a trip and a thread hop fewer each.
        with llm_records_deferred() as metered:
            try:
                stored = await self._extract_and_store(batch, metered)
            except Exception as exc:  # the database failed the batch: the items are not in the outbox
                logger.warning("agents: could not store the items of %s: %s", batch[0][0].kind, type(exc).__name__)
                for source, _ in batch:
                    self.errors.add(AgentsErrorCode.EXTRACTION_FAILED, f"{source.label}: its items could not be stored")
                await database_sync_to_async(_usage_record_alone)(records=metered.records)
                return
            except BaseException:
                # Cancelled (the worker is stopping): the calls made are still recorded. A record
                # stored twice (its batch went through after all) is stored once: its call id.
                if metered.records:
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(database_sync_to_async(_usage_record_alone)(records=metered.records))
                raise
        self.items_stored += len(stored)
        self.progress.update(items_extracted=len(stored))
        if stored and not self.delivery_stopped:
            await self._deliver(stored)

    async def _extract_and_store(self, batch: list[Keyed], metered: DeferredRecords) -> list[PendingItem]:
        try:
            extractions = await self._extract(batch)
        finally:
            metered.close()
        # Ids per file and position in it, whichever request the file shared: a re-run proposes the
        # same ids however its files were grouped.
        keyed: list[tuple[uuid.UUID, ProposedItem]] = []
        for (source, source_key), extraction in zip(batch, extractions, strict=True):
            if extraction is not None:
                count = len(extraction.items)
                ids = item_ids(agent_id=self.config.id, source_key=source_key, content=source.text, count=count)
                keyed.extend(zip(ids, extraction.items, strict=True))
        if not keyed and not metered.records:
            return []
        return await self._store.submit(Stored(keyed, metered.records))

    async def _extract(self, batch: list[Keyed]) -> list[Extraction | None]:
        """Each source's proposals (None for all when the model call failed: reported, the run goes on)."""
        async with self._slots:
            try:
                result = await self.extractor.extract_many([source for source, _ in batch])
            except Exception as exc:  # the model client's failures: every file of the request is named
                logger.warning("agents: extraction of %s failed: %s", batch[0][0].kind, type(exc).__name__)
                self.sources_failed += len(batch)
                for source, _ in batch:
                    self.errors.add(AgentsErrorCode.EXTRACTION_FAILED, f"{source.label}: {type(exc).__name__}")
                return [None] * len(batch)
        self.items_processed += len(batch)
        for note in result.notes:  # about the request as a whole: under every file's name
            self.errors.add(AgentsErrorCode.EXTRACTION_FAILED, f"{', '.join(s.label for s, _ in batch)}: {note}")
        for (source, _), extraction in zip(batch, result.extractions, strict=True):
            for note in extraction.notes:
                self.errors.add(AgentsErrorCode.EXTRACTION_FAILED, f"{source.label}: {note}")
        return list(result.extractions)

    def _store_batch(self, batch: list[Stored]) -> list[list[PendingItem]]:
        # Two statements, each atomic on its own (no transaction: two round trips fewer). Usage
        # stored without its items (they failed) is what the caller's failure path stores anyway,
        # and a call recorded twice is recorded once (its call id).
        llm_usage_record_many(records=[record for one in batch for record in one.usage])
        stored = outbox_items_store(
            user_id=self.run.user_id,
            run_id=self.run.id,
            device_id=self.outbox_device_id,
            items=[pair for one in batch for pair in one.items],
        )
        by_id = {item.id: item for item in stored}
        return [[by_id.pop(key) for key, _ in one.items if key in by_id] for one in batch]

    async def _deliver(self, items: list[PendingItem]) -> None:
        device_id = await self.target()
        if device_id is None:
            self.delivery_stopped = self.delivery_stopped or "no device online"
            return
        if device_id != self.outbox_device_id:
            # "Any device" items are bound to this device first (a single UPDATE each, so no
            # other delivery takes them too).
            items = await database_sync_to_async(outbox_claim)(
                user_id=self.run.user_id, device_id=device_id, item_ids=[i.id for i in items], limit=len(items)
            )
        delivery = self._deliveries.get(device_id)
        if delivery is None:
            delivery = OutboxDelivery(
                user_id=self.run.user_id,
                device_id=device_id,
                on_delivered=lambda count: self.progress.update(items_delivered=count),
            )
            self._deliveries[device_id] = delivery
        delivery.add(items)
        if delivery.gone and not self.delivery_stopped:
            self.delivery_stopped = delivery.report.device_error

    def _account(self, report: DeliveryReport, *, counted: bool = True) -> None:
        if report.delivered and not counted:
            self.progress.update(items_delivered=report.delivered)
        for failure in report.failed:
            self.errors.add(AgentsErrorCode.DELIVERY_FAILED, failure)
        if report.device_error and not self.delivery_stopped:
            self.delivery_stopped = report.device_error

    async def deliver_leftovers(self) -> None:
        """One last attempt for this run's items still pending (e.g. the device came back)."""
        device_id = await self.target()
        if device_id is None:
            return
        items = await database_sync_to_async(outbox_claim)(
            user_id=self.run.user_id, device_id=device_id, run_id=self.run.id, limit=10_000
        )
        if items:
            report = await outbox_deliver(user_id=self.run.user_id, device_id=device_id, items=items)
            self._account(report, counted=False)


@contextlib.asynccontextmanager
async def lease_kept(run_id):
    """Renew the run's lease while the body works, so the sweeper never takes a live run."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(settings.AGENTS_RUN_LEASE_RENEW_INTERVAL)
            try:
                await database_sync_to_async(run_lease_renew)(run_id=run_id)
            except Exception:
                logger.exception("agents: could not renew the lease of run %s", run_id)

    task = asyncio.ensure_future(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run_status(*, processed: int, created: int, errors: RunErrors, aborted: bool) -> str:
    """success: nothing went wrong; partial: something did but work got through; error: nothing did."""
    if not errors and not aborted:
        return RunStatus.SUCCESS
    if processed or created:
        return RunStatus.PARTIAL
    return RunStatus.ERROR


async def finish(
    run: AgentRunLog, *, processed: int, errors: RunErrors, aborted: bool = False, progress: RunProgress | None = None
) -> AgentRunLog:
    created = await database_sync_to_async(_items_created)(run_id=run.id)
    if progress is not None:
        await progress.finish(items_delivered=created)
    status = run_status(processed=processed, created=created, errors=errors, aborted=aborted)
    return await database_sync_to_async(run_finish)(
        run_id=run.id, status=status, items_processed=processed, items_created=None, errors=errors.as_list()
    )


def _items_created(*, run_id) -> int:
    # Counted per acknowledged insert by the outbox (outbox_item_delivered), never twice.
    return AgentRunLog.objects.values_list("items_created", flat=True).get(id=run_id)
