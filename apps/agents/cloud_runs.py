"""A cloud connector run: fetch the mailbox / Teams messages since the last run, extract items
from each message, store them in the outbox and push them to any online device of the user.

The provider's new position (``sync_cursor``) is saved only once every fetched message has
been extracted and its items are in the outbox: a failed extraction leaves the cursor where it
was, and the next run reads those messages again (their items get the same ids, so nothing is
proposed twice).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.conf import settings

from apps.connectors.fetch import ConnectorError, ConnectorMessage, connector_fetch
from apps.devices.services import devices_online

from .extraction import Source
from .models import AgentRunLog, CloudAgentConfig
from .run_pipeline import RunErrors, RunPipeline, finish, lease_kept


def _message_source(message: ConnectorMessage) -> Source:
    labels = ", ".join(message.labels or [])
    text = (
        f"From: {message.sender}\nSubject: {message.subject}\nReceived: {message.received_at}\n"
        + (f"Labels: {labels}\n" if labels else "")
        + f"\n{message.body_text}"
    )
    return Source(kind="message", label=f"{message.provider} message {message.id}", text=text)


async def _any_online_device(user_id) -> str | None:
    devices = await devices_online(user_id=user_id)
    return devices[0].device_id if devices else None


def _cursor_save(*, config_id, cursor: dict) -> None:
    CloudAgentConfig.objects.filter(id=config_id).update(sync_cursor=cursor)


async def cloud_run_execute(run: AgentRunLog, config: CloudAgentConfig) -> AgentRunLog:
    errors = RunErrors()

    async def target() -> str | None:
        return await _any_online_device(run.user_id)

    pipeline = RunPipeline(run=run, config=config, outbox_device_id="", target=target)
    pipeline.errors = errors
    async with lease_kept(run.id):
        try:
            fetched = await database_sync_to_async(connector_fetch)(
                user_id=run.user_id,
                provider=config.provider,
                filter_config=dict(config.filter_config or {}),
                cursor=dict(config.sync_cursor or {}),
                max_messages=settings.AGENTS_CLOUD_MAX_MESSAGES,
            )
        except ConnectorError as exc:
            errors.add(exc.code, exc.message)
            return await finish(run, processed=0, errors=errors, aborted=True, progress=pipeline.progress)
        pipeline.progress.update(phase="extracting", files_read=len(fetched.messages))
        for message in fetched.messages:
            pipeline.submit(_message_source(message), source_key=f"{message.provider}:{message.id}")
        await pipeline.drain()
        if pipeline.sources_failed == 0:
            await database_sync_to_async(_cursor_save)(config_id=config.id, cursor=dict(fetched.cursor))
        pipeline.progress.update(phase="delivering")
        await pipeline.deliver_leftovers()
    return await finish(run, processed=pipeline.items_processed, errors=errors, progress=pipeline.progress)
