"""Memory endpoints under /api/v1/memory/…; ``kind`` is core, associative, episodic or proactive."""

from django.urls import path, register_converter

from .apis import MemoryApi, MemoryExportApi, MemoryItemApi, MemoryKindApi
from .models import MemoryKind


class MemoryKindConverter:
    regex = "|".join(kind.value for kind in MemoryKind)

    def to_python(self, value: str) -> MemoryKind:
        return MemoryKind(value)

    def to_url(self, value: MemoryKind | str) -> str:
        return MemoryKind(value).value


register_converter(MemoryKindConverter, "memory_kind")

urlpatterns = [
    path("memory", MemoryApi.as_view(), name="memory"),
    path("memory/export", MemoryExportApi.as_view(), name="memory-export"),
    path("memory/<memory_kind:kind>", MemoryKindApi.as_view(), name="memory-kind"),
    path("memory/<memory_kind:kind>/<uuid:item_id>", MemoryItemApi.as_view(), name="memory-item"),
]
