"""Page/limit pagination, the parameters the desktop client already sends."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response


class PagePagination(PageNumberPagination):
    page_query_param = "page"
    page_size_query_param = "limit"
    page_size = 50
    max_page_size = 200

    def get_paginated_response(self, data: list[Any]) -> Response:
        assert self.page is not None
        return Response(
            {
                "count": self.page.paginator.count,
                "page": self.page.number,
                "limit": self.page.paginator.per_page,
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "page", "limit", "results"],
            "properties": {
                "count": {"type": "integer"},
                "page": {"type": "integer"},
                "limit": {"type": "integer"},
                "results": schema,
            },
        }
