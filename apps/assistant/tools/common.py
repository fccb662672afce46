"""What every device tool shares: failures as sentences for the model, result shapes, readable lines."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from ..device_calls import DeviceUnavailable, delete_confirmed, execute_on_client


def device_tool(func: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """Turn a device failure into the sentence the model reads instead of an exception."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> str:
        try:
            return await func(*args, **kwargs)
        except DeviceUnavailable as exc:
            return exc.sentence

    return wrapper


def format_date(ms: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.UTC).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):
        return "none"


def invalid_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    return f"Invalid {name} {value!r}: use one of {', '.join(allowed)}. Nothing was changed."


def result_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result.get("rows")
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def result_row(result: dict[str, Any]) -> dict[str, Any] | None:
    row = result.get("row")
    return row if isinstance(row, dict) else None


def listing(noun: str, rows: list[dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> str:
    if not rows:
        return f"No {noun}s found."
    return f"Found {len(rows)} {noun}(s):\n" + "\n".join(line(r) for r in rows)


async def delete_row(*, table: str, noun: str, row_id: str, done: str) -> str:
    """Delete one row on the device; report it deleted only when the device confirmed it."""
    result = await execute_on_client(action="delete", table=table, data={"id": row_id})
    if not delete_confirmed(result):
        return f"No {noun} with id {row_id} was found; nothing was deleted."
    return done
