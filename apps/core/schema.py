"""OpenAPI naming: nested serializers are named after their view, so every app can say ``InputSerializer``.

``RecordDetailApi.InputSerializer`` becomes the component ``RecordDetailInput`` (HackSoft-style nested
serializers would otherwise all collide as ``Input`` / ``Output``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi


def nested_component_name(qualname: str) -> str:
    parts = [part.removesuffix("Serializer").removesuffix("Api") for part in qualname.split(".") if part != "<locals>"]
    return "".join(parts)


class AutoSchema(openapi.AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        qualname = type(serializer).__qualname__
        if "." in qualname:
            return nested_component_name(qualname)
        return super().get_serializer_name(serializer, direction)
