"""A local directory run, executed by the Celery worker that picked up the run.

The worker sends ``agent_run`` to the bound device; the device's ``agent_data`` pieces and its
``agent_complete`` arrive at whichever web process holds its socket, which checks them and
forwards them over the channel layer to this run's own channel (``run_channel``), read here.
Files are accepted within the per-file / per-run limits (the rest is skipped and reported),
extracted as they arrive, written to the outbox and inserted on the device. The run ends when
the device completes, drops off (its socket no longer holds the device), or goes idle; every
path finishes the run with a reason.

A run is asked of its device once. Celery acknowledges the task late, so when a worker dies mid-run
the task comes back to another worker; that executor does not send ``agent_run`` again (the device
ignores a run it already has, and the run would wait for it until ``device_idle``) but reads the
device's frames from the run's channel, where they wait for whichever executor reads them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

from apps.assistant.llm import llm_configuration_check
from apps.core.cancellation import task_stopped
from apps.core.redis_outage import REDIS_UNAVAILABLE_ERRORS, redis_outage_noted
from apps.devices.channel_layer import loop_layer
from apps.devices.errors import DeviceCallError
from apps.devices.selectors import device_online_channel
from apps.devices.services import send_to_device

from .error_codes import AgentsErrorCode
from .extraction import Source
from .frames import AgentRun, AgentRunConfig
from .models import AgentRunLog, LocalAgentConfig
from .run_pipeline import RunErrors, RunPipeline, finish, lease_kept

# Channel-layer message types on a run's channel (sent by socket_handlers).
MSG_DATA = "agents.data"
MSG_COMPLETE = "agents.complete"
# Set when a run's agent_run goes out; kept a day, far beyond any run.
ASKED_KEY = "agents:run-asked:{run_id}"
ASKED_SECONDS = 24 * 3600


def run_channel(run_id: uuid.UUID | str) -> str:
    """The channel a run's executor reads its device's frames from (any process may send to it)."""
    return f"agents.run.{uuid.UUID(str(run_id)).hex}"


class FileIntake:
    """Applies the per-file and per-run limits to arriving files; reports every skipped one."""

    def __init__(self, errors: RunErrors) -> None:
        self.errors = errors
        self.files = 0
        self.bytes = 0

    def accept(self, file: dict[str, Any]) -> bool:
        size = len(file["content"].encode("utf-8", "replace"))
        path = file.get("path") or file.get("name") or "?"
        if size > settings.AGENTS_FILE_MAX_BYTES:
            self.errors.add(
                AgentsErrorCode.FILE_SKIPPED,
                f"{path}: {size} bytes, over the per-file limit of {settings.AGENTS_FILE_MAX_BYTES}",
            )
            return False
        if self.files >= settings.AGENTS_RUN_MAX_FILES:
            self.errors.add(
                AgentsErrorCode.FILE_SKIPPED, f"{path}: the run's limit of {settings.AGENTS_RUN_MAX_FILES} files"
            )
            return False
        if self.bytes + size > settings.AGENTS_RUN_MAX_BYTES:
            self.errors.add(
                AgentsErrorCode.FILE_SKIPPED, f"{path}: the run's limit of {settings.AGENTS_RUN_MAX_BYTES} bytes"
            )
            return False
        self.files += 1
        self.bytes += size
        return True


def _file_source(file: dict[str, Any]) -> Source:
    path = file.get("path") or file.get("name") or "?"
    return Source(kind="file", label=path, text=f"File: {file.get('name') or path}\n\n{file['content']}")


async def local_run_execute(run: AgentRunLog, config: LocalAgentConfig) -> AgentRunLog:
    errors = RunErrors()
    socket_channel = await device_online_channel(user_id=run.user_id, device_id=config.device_id)
    if socket_channel is None:
        errors.add("device_offline", f"device {config.device_id} is offline; the agent runs when it connects")
        return await finish(run, processed=0, errors=errors, aborted=True)
    llm_configuration_check()  # before the device is asked to read anything
    # The frame goes out before the pipeline (its model client) is built, so the device reads its
    # folders meanwhile; the run's device is recorded beside it (a run not yet bound to a device
    # accepts the frames of the one it was sent to).
    record_device = database_sync_to_async(AgentRunLog.objects.filter(id=run.id, device_id="").update)
    asked, _ = await asyncio.gather(_ask(run, config, errors), record_device(device_id=config.device_id))

    async def target() -> str | None:
        return config.device_id

    pipeline = RunPipeline(run=run, config=config, outbox_device_id=config.device_id, target=target)
    pipeline.errors = errors
    async with lease_kept(run.id):
        aborted = not asked or await _converse(run, config, socket_channel, pipeline, errors)
        pipeline.progress.update(phase="extracting")
        await pipeline.drain()
        pipeline.progress.update(phase="delivering")
        await pipeline.deliver_leftovers()
        # Checked after the last attempt too: a drop met only there leaves items undelivered.
        if pipeline.delivery_stopped and not aborted:
            errors.add(AgentsErrorCode.DEVICE_DROPPED, f"delivery stopped: {pipeline.delivery_stopped}")
            aborted = True
    return await finish(
        run, processed=pipeline.items_processed, errors=errors, aborted=aborted, progress=pipeline.progress
    )


async def _ask(run: AgentRunLog, config: LocalAgentConfig, errors: RunErrors) -> bool:
    """Send ``agent_run`` (unless an earlier executor of the run did); False if it could not go."""
    frame = AgentRun(
        run_id=str(run.id),
        agent_id=str(config.id),
        config=AgentRunConfig(
            paths=list(config.directory_paths),
            file_extensions=list(config.file_extensions),
            prompt_template=config.prompt_template,
            data_types=list(config.data_types),
        ),
    )
    if await _first_ask(run.id):
        try:
            await send_to_device(user_id=run.user_id, frame=frame.model_dump(), device_id=config.device_id)
        except DeviceCallError as exc:
            errors.add(exc.code, exc.message)
            return False
    return True


async def _next_message(inbox: asyncio.Queue[dict], seconds: float) -> dict:
    """The inbox's next message, or ``TimeoutError`` after ``seconds``. Under ``asyncio.timeout``, not
    ``wait_for``: on CPython 3.11 ``wait_for`` returns the message when the executor's cancellation comes
    in the turn it arrives, and the run went on as if never cancelled (apps.core.cancellation)."""
    async with asyncio.timeout(seconds):
        return await inbox.get()


async def _converse(
    run: AgentRunLog, config: LocalAgentConfig, socket_channel: str, pipeline: RunPipeline, errors: RunErrors
) -> bool:
    """Take the device's files until ``agent_complete``; True if cut short."""
    layer = loop_layer()
    channel = run_channel(run.id)
    inbox: asyncio.Queue[dict] = asyncio.Queue()

    async def read() -> None:
        while True:
            inbox.put_nowait(await layer.receive(channel))

    reader = asyncio.ensure_future(read())
    intake = FileIntake(errors)
    last_heard = time.monotonic()
    try:
        while True:
            try:
                message = await _next_message(inbox, settings.AGENTS_DEVICE_CHECK_INTERVAL)
            except TimeoutError:
                if reader.done():  # the channel layer failed under us
                    errors.add(AgentsErrorCode.DEVICE_DROPPED, "lost the connection to the channel layer")
                    return True
                if not await _device_still_there(run, config.device_id, socket_channel):
                    errors.add(AgentsErrorCode.DEVICE_DROPPED, "the device disconnected during the run")
                    return True
                if time.monotonic() - last_heard > settings.AGENTS_DATA_IDLE_TIMEOUT:
                    errors.add(
                        AgentsErrorCode.DEVICE_IDLE,
                        f"the device sent nothing for {settings.AGENTS_DATA_IDLE_TIMEOUT:.0f} s",
                    )
                    return True
                continue
            last_heard = time.monotonic()
            if message["type"] == MSG_DATA:
                accepted = []
                for file in message["files"]:
                    if intake.accept(file):
                        pipeline.progress.update(files_read=1)
                        accepted.append((_file_source(file), str(file.get("path") or file.get("name"))))
                pipeline.submit_files(accepted)  # small files of one piece share requests
            elif message["type"] == MSG_COMPLETE:
                for error in message.get("errors", []):
                    errors.add("device_reported", str(error)[:500])
                return False
    finally:
        # Its receive can drop a cancellation and block in its next pop (apps.core.cancellation).
        await task_stopped(reader)


async def _first_ask(run_id: uuid.UUID) -> bool:
    """True for the first executor of the run (send agent_run); False when it was already sent."""
    try:
        return bool(await cache.aadd(ASKED_KEY.format(run_id=run_id), 1, timeout=ASKED_SECONDS))
    except REDIS_UNAVAILABLE_ERRORS as exc:  # asking again beats never asking
        redis_outage_noted(where="agent_run_asked", exc=exc)
        return True


async def _device_still_there(run: AgentRunLog, device_id: str, socket_channel: str) -> bool:
    return await device_online_channel(user_id=run.user_id, device_id=device_id) == socket_channel
