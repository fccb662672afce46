"""Staff views of memory: counts per user and row metadata, never decrypted (or encrypted) content."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypedDict

from django.contrib import admin
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from apps.core.admin_base import ReadOnlyAdmin

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

from .models import (
    VECTOR_FIELDS,
    AssociativeMemory,
    CoreMemory,
    Episode,
    MemoryKind,
    MemoryOwner,
    ProactivePattern,
)
from .selectors import memory_tally_items


class _ReadOnlyMetadataAdmin(ReadOnlyAdmin):
    """Rows can be looked at (who, when) and deleted, not read or edited."""

    allow_delete = True
    list_select_related = ["user"]
    search_fields = ["user__email"]
    date_hierarchy = "created_at"


@admin.register(CoreMemory)
class CoreMemoryAdmin(_ReadOnlyMetadataAdmin):
    list_display = ["id", "user", "created_at", "updated_at"]
    fields = ["id", "user", "created_at", "updated_at"]


@admin.register(AssociativeMemory)
class AssociativeMemoryAdmin(_ReadOnlyMetadataAdmin):
    list_display = ["id", "user", "created_at", "updated_at"]
    fields = ["id", "user", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AssociativeMemory]:
        return super().get_queryset(request).defer(*VECTOR_FIELDS[MemoryKind.ASSOCIATIVE])


@admin.register(Episode)
class EpisodeAdmin(_ReadOnlyMetadataAdmin):
    list_display = ["id", "user", "session_id", "created_at"]
    fields = ["id", "user", "session_id", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Episode]:
        return super().get_queryset(request).defer(*VECTOR_FIELDS[MemoryKind.EPISODIC])


@admin.register(ProactivePattern)
class ProactivePatternAdmin(_ReadOnlyMetadataAdmin):
    list_display = ["id", "user", "confidence", "created_at", "updated_at"]
    fields = ["id", "user", "confidence", "created_at", "updated_at"]


def _count_of(kind: MemoryKind) -> Coalesce:
    # The owner's tally of the kind (one row, kept by PostgreSQL), not a count of the kind's rows per
    # owner listed: ordering the page by a count reads one row per owner and kind.
    tallied = memory_tally_items(user_id=OuterRef("pk"), kind=kind)
    return Coalesce(Subquery(tallied, output_field=IntegerField()), 0)


class _Counts(TypedDict):
    core_n: int
    associative_n: int
    episode_n: int
    pattern_n: int


if TYPE_CHECKING:
    _CountedOwner = WithAnnotations[MemoryOwner, _Counts]


@admin.register(MemoryOwner)
class MemoryOwnerAdmin(ReadOnlyAdmin):
    list_display = ["email", "core_count", "associative_count", "episode_count", "pattern_count"]
    search_fields = ["email"]
    fields: ClassVar[tuple[str, ...]] = ("email", "core_count", "associative_count", "episode_count", "pattern_count")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[MemoryOwner]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                core_n=_count_of(MemoryKind.CORE),
                associative_n=_count_of(MemoryKind.ASSOCIATIVE),
                episode_n=_count_of(MemoryKind.EPISODIC),
                pattern_n=_count_of(MemoryKind.PROACTIVE),
            )
        )

    @admin.display(description="core", ordering="core_n")
    def core_count(self, owner: _CountedOwner) -> int:
        return owner.core_n

    @admin.display(description="associative", ordering="associative_n")
    def associative_count(self, owner: _CountedOwner) -> int:
        return owner.associative_n

    @admin.display(description="episodes", ordering="episode_n")
    def episode_count(self, owner: _CountedOwner) -> int:
        return owner.episode_n

    @admin.display(description="patterns", ordering="pattern_n")
    def pattern_count(self, owner: _CountedOwner) -> int:
        return owner.pattern_n
