"""Reads of a user's memory; decryption happens here, in this process's memory only.

``memory_context`` is what the assistant recalls before each agent call (it renders the words):
core preferences always, the top-k associative memories by cosine similarity, recent episodes,
and patterns above the confidence threshold. Every query is filtered by the owner.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import namedtuple
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import CharField, F, Func, QuerySet, Subquery
from django.db.models.functions import Cast

from apps.accounts.keys import auser_fernet_reader
from apps.core.compiled_queries import CompiledQuery
from apps.core.errors import ApplicationError, NotFoundError
from apps.core.loop_db import loop_fetchall, loop_reads_on

from .crypto import Unsealer
from .embeddings import validate_embedding
from .error_codes import MemoryErrorCode
from .models import (
    MODEL_OF_KIND,
    PATTERN_CONFIDENCE_THRESHOLD,
    VECTOR_FIELDS,
    CoreMemory,
    Episode,
    MemoryKind,
    MemoryTally,
    ProactivePattern,
)

UserId = uuid.UUID | str

MAX_TOP_K = 50
MAX_RECENT_EPISODES = 50
MAX_PATTERNS = 20


@dataclass(frozen=True)
class AssociativeHit:
    content: str
    entity_type: str | None
    entity_id: str | None
    score: float  # cosine similarity, 1.0 = same direction


@dataclass(frozen=True)
class EpisodeSummary:
    session_id: str
    summary: str
    created_at: dt.datetime


@dataclass(frozen=True)
class PatternHit:
    description: str
    confidence: float


@dataclass(frozen=True)
class MemoryContext:
    core: dict[str, str] = field(default_factory=dict)
    associative: list[AssociativeHit] = field(default_factory=list)
    episodes: list[EpisodeSummary] = field(default_factory=list)
    patterns: list[PatternHit] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.core or self.associative or self.episodes or self.patterns)


def _bounded(value: int, *, name: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        reason = f"must be an integer between 0 and {maximum}."
        raise ApplicationError(
            MemoryErrorCode.LIMIT_INVALID, f"The {name} {reason}", status=400, fields={name: [reason]}
        )
    return value


def core_memory_dict(*, user_id: UserId) -> dict[str, str]:
    rows = CoreMemory.objects.filter(user_id=user_id).values_list("key_encrypted", "value_encrypted")
    unseal_ = Unsealer(user_id=user_id)
    pairs = [(unseal_(k), unseal_(v)) for k, v in rows]
    return dict(sorted(pairs))


# Two passes over the owner's rows only (migration 0007). First, every row is ranked by the Hamming
# distance between its sign bits (``embedding_bits``) and the query's, read by an index-only scan
# of the covering ``memory_assoc_user_bits`` index: about 2.7 MB per 10,000 memories instead of the
# 80 MB of heap pages that hold their full vectors. Then the shortlist is re-ranked by exact cosine
# distance on the full vectors; a user with fewer memories than the shortlist gets an exact search.
# Shortlist sizes measured by bench/memory_enrichment.py at 10,000 memories per user: 50 already gave
# recall@10 0.98 on its clustered vectors, 200 gave 1.000 at a few ms more. Real sentence embeddings
# (a real model over ~30k real sentences, measured outside the project) need more: 200 gave 0.99 for
# unrelated queries but 0.962-0.973 when a stored fact is asked again in other words, which needed
# 350-450 for 0.99; hence 400.
# The query vector (about 30 KB of text) is sent and parsed once, not once per use; the planner
# still folds it and its sign bits into constants. With its orjson text and the fast validation,
# ``memory_context`` costs 0.81x the CPU it did (bench/memory_context_phases.py).
_ASSOCIATIVE_SQL = """
SELECT memory.content_encrypted, memory.entity_type_encrypted, memory.entity_id_encrypted,
       memory.embedding <=> query.vector AS distance
FROM (SELECT %(query)s::vector AS vector) AS query
CROSS JOIN LATERAL (
    SELECT id FROM memory_associativememory
    WHERE user_id = %(user_id)s
    ORDER BY embedding_bits <~> binary_quantize(query.vector)
    LIMIT %(candidates)s
) AS candidate
JOIN memory_associativememory AS memory ON memory.id = candidate.id AND memory.user_id = %(user_id)s
ORDER BY distance
LIMIT %(top_k)s
"""
SHORTLIST_MIN = 400
SHORTLIST_PER_HIT = 20


def associative_memory_search(*, user_id: UserId, query_embedding: list[float], top_k: int = 5) -> list[AssociativeHit]:
    """The user's ``top_k`` memories closest to the query by cosine distance (Hamming shortlist, exact re-rank)."""
    vector = validate_embedding(query_embedding, field="query_embedding")
    top_k = _bounded(top_k, name="top_k", maximum=MAX_TOP_K)
    if top_k == 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_ASSOCIATIVE_SQL, {"user_id": uuid.UUID(str(user_id)), **_search_params(vector, top_k)})
        rows = cursor.fetchall()
    unseal_ = Unsealer(user_id=user_id)
    return [
        AssociativeHit(
            content=unseal_(content),
            entity_type=unseal_.optional(entity_type),
            entity_id=unseal_.optional(entity_id),
            score=1.0 - float(distance),
        )
        for content, entity_type, entity_id, distance in rows
    ]


def episodes_recent(*, user_id: UserId, limit: int = 5) -> list[EpisodeSummary]:
    limit = _bounded(limit, name="recent_episodes", maximum=MAX_RECENT_EPISODES)
    rows = (
        # Pending episodes (no summary yet, see learning.py) are not shown to the model.
        Episode.objects.filter(user_id=user_id, summary_encrypted__isnull=False)
        .order_by("-created_at")
        .values_list("session_id", "summary_encrypted", "created_at")[:limit]
    )
    unseal_ = Unsealer(user_id=user_id)
    return [
        EpisodeSummary(session_id=session_id, summary=unseal_(summary), created_at=created_at)
        for session_id, summary, created_at in rows
        if summary is not None  # the filter above already excludes it; this tells the type checker
    ]


def patterns_all(*, user_id: UserId) -> list[PatternHit]:
    """Every pattern of the user, active or not, most confident first (what learning already knows)."""
    rows = (
        ProactivePattern.objects.filter(user_id=user_id)
        .order_by("-confidence", "-updated_at")
        .values_list("description_encrypted", "confidence")
    )
    unseal_ = Unsealer(user_id=user_id)
    return [PatternHit(description=unseal_(d), confidence=c) for d, c in rows]


def patterns_active(*, user_id: UserId, limit: int = MAX_PATTERNS) -> list[PatternHit]:
    """Patterns strictly above the confidence threshold, most confident first."""
    rows = (
        ProactivePattern.objects.filter(user_id=user_id, confidence__gt=PATTERN_CONFIDENCE_THRESHOLD)
        .order_by("-confidence", "-updated_at")
        .values_list("description_encrypted", "confidence")[:limit]
    )
    unseal_ = Unsealer(user_id=user_id)
    return [PatternHit(description=unseal_(d), confidence=c) for d, c in rows]


# The whole context in one round trip: before every chat turn the database is asked once, not four
# times. Each branch is the same query as its selector above (same filters, order and limits).
_CONTEXT_SQL = """
SELECT 'core' AS kind, key_encrypted AS a, value_encrypted AS b, NULL::bytea AS c,
       NULL::timestamptz AS at, NULL::float8 AS number, NULL::text AS session_id
FROM memory_corememory WHERE user_id = %(user_id)s
UNION ALL (
    SELECT 'episode', summary_encrypted, NULL, NULL, created_at, NULL, session_id
    FROM memory_episode WHERE user_id = %(user_id)s AND summary_encrypted IS NOT NULL
    ORDER BY created_at DESC LIMIT %(episodes)s
)
UNION ALL (
    SELECT 'pattern', description_encrypted, NULL, NULL, NULL, confidence, NULL
    FROM memory_proactivepattern WHERE user_id = %(user_id)s AND confidence > %(threshold)s
    ORDER BY confidence DESC, updated_at DESC LIMIT %(patterns)s
)
"""
# The search above as one more branch (two module constants joined; no input reaches the text).
_CONTEXT_SEARCH_SQL = (
    "UNION ALL (SELECT 'associative', content_encrypted, entity_type_encrypted, entity_id_encrypted, NULL, "  # noqa: S608
    "distance, NULL FROM (" + _ASSOCIATIVE_SQL + ") AS associative)"
)


def _search_params(vector: list[float], top_k: int) -> dict[str, Any]:
    return {
        # pgvector's text form: orjson writes the shortest round-trip digits, as repr does, ~20x faster.
        "query": orjson.dumps(vector).decode(),
        "candidates": max(SHORTLIST_MIN, top_k * SHORTLIST_PER_HIT),
        "top_k": top_k,
    }


def memory_context(
    *, user_id: UserId, query_embedding: list[float] | None, top_k: int = 5, recent_episodes: int = 5
) -> MemoryContext:
    """Everything the assistant should know before answering; no associative search without a query."""
    top_k = _bounded(top_k, name="top_k", maximum=MAX_TOP_K)
    recent_episodes = _bounded(recent_episodes, name="recent_episodes", maximum=MAX_RECENT_EPISODES)
    search = query_embedding is not None and top_k > 0
    params = _context_params(user_id, recent_episodes)
    if search:
        params |= _search_params(validate_embedding(query_embedding, field="query_embedding"), top_k)
    with connection.cursor() as cursor:
        cursor.execute(_CONTEXT_SQL + (_CONTEXT_SEARCH_SQL if search else ""), params)
        rows = cursor.fetchall()
    return _context_of_rows(user_id, rows)


# Whether the user has an associative memory at all, as one more row of the context's answer.
_CONTEXT_SEARCHABLE_SQL = """
UNION ALL (
    SELECT 'searchable', NULL, NULL, NULL, NULL, NULL, NULL
    WHERE EXISTS (SELECT 1 FROM memory_associativememory WHERE user_id = %(user_id)s)
)
"""


def memory_context_unsearched(*, user_id: UserId, recent_episodes: int = 5) -> tuple[MemoryContext, bool]:
    """``memory_context`` without the associative search, and whether the user has any associative
    memory to search, in one round trip: a caller need not embed its query for a user who has none."""
    recent_episodes = _bounded(recent_episodes, name="recent_episodes", maximum=MAX_RECENT_EPISODES)
    with connection.cursor() as cursor:
        cursor.execute(_CONTEXT_SQL + _CONTEXT_SEARCHABLE_SQL, _context_params(user_id, recent_episodes))
        rows = cursor.fetchall()
    searchable = any(row[0] == "searchable" for row in rows)
    return _context_of_rows(user_id, [row for row in rows if row[0] != "searchable"]), searchable


def _context_params(user_id: UserId, recent_episodes: int) -> dict[str, Any]:
    return {
        "user_id": uuid.UUID(str(user_id)),
        "episodes": recent_episodes,
        "threshold": PATTERN_CONFIDENCE_THRESHOLD,
        "patterns": MAX_PATTERNS,
    }


def _context_of_rows(user_id: UserId, rows: list[tuple[Any, ...]]) -> MemoryContext:
    core: list[tuple[str, str]] = []
    hits: list[tuple[float, AssociativeHit]] = []
    episodes: list[EpisodeSummary] = []
    patterns: list[PatternHit] = []
    unseal_ = Unsealer(user_id=user_id)  # the user's key once for the whole context, not per field
    for kind, a, b, c, at, number, session_id in rows:
        if kind == "core":
            core.append((unseal_(a), unseal_(b)))
        elif kind == "episode":
            episodes.append(EpisodeSummary(session_id=session_id, summary=unseal_(a), created_at=at))
        elif kind == "pattern":
            patterns.append(PatternHit(description=unseal_(a), confidence=number))
        else:
            hit = AssociativeHit(
                content=unseal_(a),
                entity_type=unseal_.optional(b),
                entity_id=unseal_.optional(c),
                score=1.0 - float(number),
            )
            hits.append((float(number), hit))
    # UNION ALL keeps no order across branches: restore each one's.
    episodes.sort(key=lambda episode: episode.created_at, reverse=True)
    patterns.sort(key=lambda pattern: pattern.confidence, reverse=True)
    return MemoryContext(
        core=dict(sorted(core)),
        associative=[hit for _, hit in sorted(hits, key=lambda pair: pair[0])],
        episodes=episodes,
        patterns=patterns,
    )


async def amemory_context(
    *, user_id: UserId, query_embedding: list[float] | None, top_k: int = 5, recent_episodes: int = 5
) -> MemoryContext:
    """``memory_context`` for async callers (the socket consumer, the agent runner)."""
    return await sync_to_async(memory_context, thread_sensitive=True)(
        user_id=user_id, query_embedding=query_embedding, top_k=top_k, recent_episodes=recent_episodes
    )


# --- listing and export (the user's own view of their memory) --------------------------------


def memory_queryset(*, user_id: UserId, kind: MemoryKind) -> QuerySet[Any]:
    """The user's items of one kind, newest first, with the vectors left out."""
    return (
        MODEL_OF_KIND[MemoryKind(kind)].objects.filter(user_id=user_id).defer(*VECTOR_FIELDS.get(MemoryKind(kind), ()))
    )


# What ``memory_item_view`` reads of an item, per kind (never the vectors).
_VIEW_COLUMNS: dict[MemoryKind, tuple[str, ...]] = {
    MemoryKind.CORE: ("id", "created_at", "updated_at", "key_encrypted", "value_encrypted"),
    MemoryKind.ASSOCIATIVE: (
        "id",
        "created_at",
        "updated_at",
        "content_encrypted",
        "entity_type_encrypted",
        "entity_id_encrypted",
    ),
    MemoryKind.EPISODIC: ("id", "created_at", "updated_at", "session_id", "summary_encrypted"),
    MemoryKind.PROACTIVE: ("id", "created_at", "updated_at", "description_encrypted", "confidence"),
}
_VIEW_ROWS = {kind: namedtuple(f"{kind.value.title()}Row", columns) for kind, columns in _VIEW_COLUMNS.items()}
# Its sealed columns (what ``_item_view`` unseals), opened as one batch per page.
_SEALED_COLUMNS = {
    kind: tuple(name for name in columns if name.endswith("_encrypted")) for kind, columns in _VIEW_COLUMNS.items()
}


class UtcText(Func):
    """A ``timestamptz`` as UTC text, ``YYYY-MM-DDTHH:MM:SS.ffffff`` (always six digits), written by
    PostgreSQL in this one shape whatever the session's DateStyle or TimeZone."""

    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    output_field = CharField()


def _memory_page(kind: MemoryKind, user_id: Any) -> QuerySet[Any]:
    # Every row carries the number of the user's items of the kind: one round trip answers the page and its count.
    # The count is a scalar subquery (run once, an index-only scan) and the rows come by the (user,
    # created_at) index in page order; a window over the rows read and sorted every item for a page of 20.
    # The dates come as text: the list answers them as text, and psycopg's timestamptz loader, which
    # Django subclasses in Python, cost ~3.5 µs a date, as much as opening one of the page's tokens.
    # So does the id: psycopg's uuid loader (Python) and str() cost ~1.5 µs an item.
    # The count is the user's tally of the kind (``MemoryTally``, one row), not a count of the kind's
    # rows, which read every index entry of the user (0.54 ms at the associative cap of 10,000).
    items = memory_queryset(user_id=user_id, kind=kind)
    count = memory_tally_items(user_id=user_id, kind=kind)
    texts = {
        "id_text": Cast("id", CharField()),
        "created_utc": UtcText(F("created_at")),
        "updated_utc": UtcText(F("updated_at")),
    }
    columns = [_AS_TEXT.get(c, c) for c in _VIEW_COLUMNS[kind]]
    return items.annotate(**texts, total=Subquery(count)).values_list(*columns, "total")


# The page's columns read as the text the list answers (``_memory_page``).
_AS_TEXT = {"id": "id_text", "created_at": "created_utc", "updated_at": "updated_utc"}


def _owned_item(kind: MemoryKind, user_id: Any, item_id: Any) -> QuerySet[Any]:
    return memory_queryset(user_id=user_id, kind=kind).filter(id=item_id)


def _user_id_field(kind: MemoryKind) -> Any:
    return MODEL_OF_KIND[kind]._meta.get_field("user").target_field


# The client's memory screens read these: compiled once per process and kind.
_MEMORY_PAGES = {kind: CompiledQuery(partial(_memory_page, kind), user_id=_user_id_field(kind)) for kind in MemoryKind}
_OWNED_ITEMS = {
    kind: CompiledQuery(partial(_owned_item, kind), user_id=_user_id_field(kind), item_id=MODEL_OF_KIND[kind]._meta.pk)
    for kind in MemoryKind
}


def memory_page(
    *, user_id: UserId, kind: MemoryKind, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """The user's items of one kind, decrypted (``memory_item_view``, but the id is its text and
    ``created_at`` and ``updated_at`` are ``UtcText``'s), newest first, from ``offset``, at most
    ``limit``, and how many items of the kind they have; that number is None when the page is empty
    (past the end, or no item at all)."""
    kind = MemoryKind(kind)
    rows = _MEMORY_PAGES[kind].rows(user_id=user_id, limit=limit, offset=offset)
    if not rows:
        return [], None
    return _page_views(kind, rows, Unsealer(user_id=user_id)), rows[0][-1]


async def amemory_page(
    *, user_id: UserId, kind: MemoryKind, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """``memory_page`` awaited (its query on the server's loop, ``CompiledQuery.arows``)."""
    kind = MemoryKind(kind)
    rows = await _MEMORY_PAGES[kind].arows(user_id=user_id, limit=limit, offset=offset)
    if not rows:
        return [], None
    reader = await auser_fernet_reader(user_id=user_id)
    return _page_views(kind, rows, Unsealer(user_id=user_id, reader=reader)), rows[0][-1]


def _page_views(kind: MemoryKind, rows: list[tuple[Any, ...]], unseal_: Unsealer) -> list[dict[str, Any]]:
    row_type = _VIEW_ROWS[kind]
    items = [row_type(*row[:-1]) for row in rows]  # each row ends with the count of all the kind's items
    sealed = _SEALED_COLUMNS[kind]
    unseal_.preload(getattr(item, column) for item in items for column in sealed)  # the page's tokens as one batch
    return [_item_view(kind, item, unseal_) for item in items]


def memory_tally_items(*, user_id: Any, kind: MemoryKind) -> QuerySet[Any]:
    """The user's tally of ``kind`` (``MemoryTally``) as a query of one column, ``items``: one row, or
    none before their first item of the kind. ``user_id`` may be an ``OuterRef`` (a subquery)."""
    return MemoryTally.objects.filter(user_id=user_id, kind=MemoryKind(kind).value).values("items")


def memory_kind_count(*, user_id: UserId, kind: MemoryKind) -> int:
    """How many items of ``kind`` the user has (their ``MemoryTally``)."""
    return next((row["items"] for row in memory_tally_items(user_id=user_id, kind=kind)), 0)


def memory_item_get(*, user_id: UserId, kind: MemoryKind, item_id: uuid.UUID | str) -> Any:
    """One of the user's items; someone else's id, or no such id, is not found."""
    return _found(_OWNED_ITEMS[MemoryKind(kind)].first(user_id=user_id, item_id=item_id))


async def amemory_item_get(*, user_id: UserId, kind: MemoryKind, item_id: uuid.UUID | str) -> Any:
    """``memory_item_get`` awaited (on the server's loop, ``CompiledQuery.afirst``)."""
    return _found(await _OWNED_ITEMS[MemoryKind(kind)].afirst(user_id=user_id, item_id=item_id))


def _found(item: Any) -> Any:
    if item is None:
        raise NotFoundError("Memory item")
    return item


def memory_item_view(*, user_id: UserId, kind: MemoryKind, item: Any, with_embedding: bool = False) -> dict[str, Any]:
    """One item, decrypted, as plain data (for the API and the export)."""
    return _item_view(kind, item, Unsealer(user_id=user_id), with_embedding=with_embedding)


async def amemory_item_view(*, user_id: UserId, kind: MemoryKind, item: Any) -> dict[str, Any]:
    """``memory_item_view`` on the event loop (the user's key looked up as ``auser_fernet_reader`` does)."""
    reader = await auser_fernet_reader(user_id=user_id)
    return _item_view(kind, item, Unsealer(user_id=user_id, reader=reader))


def _item_view(kind: MemoryKind, item: Any, unseal_: Unsealer, *, with_embedding: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {"id": str(item.id), "created_at": item.created_at, "updated_at": item.updated_at}
    if kind == MemoryKind.CORE:
        view |= {"key": unseal_(item.key_encrypted), "value": unseal_(item.value_encrypted)}
    elif kind == MemoryKind.ASSOCIATIVE:
        view |= {
            "content": unseal_(item.content_encrypted),
            "entity_type": unseal_.optional(item.entity_type_encrypted),
            "entity_id": unseal_.optional(item.entity_id_encrypted),
        }
    elif kind == MemoryKind.EPISODIC:
        view |= {
            "session_id": item.session_id,
            "summary": unseal_.optional(item.summary_encrypted),
            "pending": item.summary_encrypted is None,
        }
    else:
        view |= {
            "description": unseal_(item.description_encrypted),
            "confidence": item.confidence,
            "active": item.confidence > PATTERN_CONFIDENCE_THRESHOLD,
        }
    if with_embedding and kind in (MemoryKind.ASSOCIATIVE, MemoryKind.EPISODIC):
        view["embedding"] = None if item.embedding is None else [float(x) for x in item.embedding]
    return view


def memory_export(*, user_id: UserId, with_embeddings: bool = False) -> dict[str, list[dict[str, Any]]]:
    """All of the user's memory, decrypted, grouped by kind."""
    export: dict[str, list[dict[str, Any]]] = {}
    for kind in MemoryKind:
        items = MODEL_OF_KIND[kind].objects.filter(user_id=user_id).order_by("created_at")
        if kind in VECTOR_FIELDS:
            # The sign bits are derived from the embedding: never part of an export.
            kept = {"embedding"} if with_embeddings else set()
            items = items.defer(*(name for name in VECTOR_FIELDS[kind] if name not in kept))
        unseal_ = Unsealer(user_id=user_id)
        export[kind.value] = [
            _item_view(kind, item, unseal_, with_embedding=with_embeddings) for item in items.iterator(chunk_size=500)
        ]
    return export


# Every kind's count in one round trip: the user's tallies (``MemoryTally``), a row per kind they have held.
_COUNTS_SQL = f"SELECT kind, items FROM {MemoryTally._meta.db_table} WHERE user_id = %(user_id)s"  # noqa: S608


def memory_counts(*, user_id: UserId) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_SQL, {"user_id": uuid.UUID(str(user_id))})
        return _counts(cursor.fetchall())


async def amemory_counts(*, user_id: UserId) -> dict[str, int]:
    """``memory_counts`` awaited (on the server's loop over ``apps.core.loop_db``, else in the thread)."""
    if not loop_reads_on():
        return await sync_to_async(memory_counts)(user_id=user_id)
    return _counts(await loop_fetchall(_COUNTS_SQL, {"user_id": uuid.UUID(str(user_id))}, prepare=True))


def _counts(rows: Any) -> dict[str, int]:
    tallied = dict(rows)
    return {kind.value: int(tallied.get(kind.value, 0)) for kind in MemoryKind}
