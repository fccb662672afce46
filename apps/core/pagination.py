"""Page/limit pagination, the parameters the desktop client already sends.

Two response shapes: the ``{count, page, limit, results}`` envelope, and a bare JSON array with the
pagination in headers (``X-Total-Count``, ``X-Page``, ``X-Per-Page``, ``Link``) for lists the earlier
backend returned as arrays, which the desktop client still parses as arrays. Views that slice by hand
(a different envelope) take ``page``/``limit`` through ``PageQuerySerializer`` and ``page_slice``, so every
list bounds its page the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.core.paginator import InvalidPage, Page, Paginator
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# Past this page every list is empty anyway; the bound keeps (page - 1) * limit, the SQL OFFSET,
# far inside PostgreSQL's bigint whatever number a client sends.
PAGE_MAX = 1_000_000
LIMIT_MAX = 200


def page_parameter(description: str = "Page number, from 1.") -> OpenApiParameter:
    return OpenApiParameter("page", {"type": "integer", "minimum": 1, "maximum": PAGE_MAX}, description=description)


def limit_parameter(*, maximum: int = LIMIT_MAX) -> OpenApiParameter:
    """``limit`` of a hand-sliced list (``PageQuerySerializer``): outside 1…maximum is a 400."""
    return OpenApiParameter(
        "limit", {"type": "integer", "minimum": 1, "maximum": maximum}, description="Items per page."
    )


def clamped_limit_parameter() -> OpenApiParameter:
    """``limit`` of a ``PagePagination`` list, which clamps instead of refusing (as the earlier backend did)."""
    return OpenApiParameter(
        "limit",
        int,
        description=f"Items per page: above {LIMIT_MAX} counts as {LIMIT_MAX}; 0, negative or not a number "
        f"means the default, {PagePagination.page_size}.",
    )


class PageQuerySerializer(serializers.Serializer):
    """``page`` and ``limit`` of a list query; filter serializers of hand-sliced lists extend it."""

    page = serializers.IntegerField(min_value=1, max_value=PAGE_MAX, default=1)
    limit = serializers.IntegerField(min_value=1, max_value=LIMIT_MAX, default=50)


def page_slice(queryset: QuerySet[Any], *, page: int, limit: int) -> QuerySet[Any]:
    return queryset[(page - 1) * limit : page * limit]


class FirstPageCountingPaginator(Paginator):
    """A paginator whose first page is read with one row more than it holds: when that row is not
    there, the page holds every row and their number needs no ``COUNT`` query (most users' lists fit
    on one page, and the count and its compilation were a third of such a request's database work)."""

    def page(self, number: Any) -> Page:
        if number != 1 or "count" in self.__dict__ or not isinstance(self.object_list, QuerySet) or self.orphans:
            return super().page(number)
        head = list(self.object_list[: self.per_page + 1])
        if len(head) <= self.per_page:
            self.__dict__["count"] = len(head)  # the cached_property's slot
        return Page(head[: self.per_page], 1, self)


class PagePagination(PageNumberPagination):
    django_paginator_class = FirstPageCountingPaginator
    page_query_param = "page"
    page_size_query_param = "limit"
    page_size = 50
    max_page_size = LIMIT_MAX

    def __init__(self, *, past_end_is_empty: bool = False) -> None:
        # The earlier backend answered a page past the end of a bare-array list with an empty array.
        self.past_end_is_empty = past_end_is_empty

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        page = request.query_params.get(self.page_query_param) or 1
        try:
            number = int(page)
        except (TypeError, ValueError):
            number = 0
        if not 1 <= number <= PAGE_MAX:
            raise serializers.ValidationError({"page": [f"A whole number from 1 to {PAGE_MAX}."]})
        return number

    def paginate_queryset(self, queryset: Any, request: Request, view: APIView | None = None) -> list[Any] | None:
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            number = self._past_end_number(request)
            if number is None:
                raise
            page_size = self.get_page_size(request)
            assert page_size is not None
            self.request = request
            self.page = Page([], number, self.django_paginator_class(queryset, page_size))
            return []

    def paginate_rows(
        self,
        request: Request,
        *,
        fetch: Callable[[int, int], tuple[list[Any], int | None]],
        count: Callable[[], int],
    ) -> list[Any]:
        """The page of a list read by hand: ``fetch(offset, limit)`` answers the page's rows and the
        number of all rows (None when the page came back empty; ``count()`` is asked then, unless it
        is the first page). The same page size, page numbers, errors and headers as
        ``paginate_queryset``, with one query for a page that holds rows instead of two."""
        page_size, number = self._page_asked(request)
        rows, total = fetch((number - 1) * page_size, page_size)
        if total is None:
            total = count() if number > 1 else 0
        return self._page_kept(request, rows=rows, number=number, page_size=page_size, total=total)

    async def apaginate_rows(
        self,
        request: Request,
        *,
        fetch: Callable[[int, int], Awaitable[tuple[list[Any], int | None]]],
        count: Callable[[], Awaitable[int]],
    ) -> list[Any]:
        """``paginate_rows`` for async views: ``fetch`` and ``count`` are awaited."""
        page_size, number = self._page_asked(request)
        rows, total = await fetch((number - 1) * page_size, page_size)
        if total is None:
            total = await count() if number > 1 else 0
        return self._page_kept(request, rows=rows, number=number, page_size=page_size, total=total)

    def _page_asked(self, request: Request) -> tuple[int, int]:
        page_size = self.get_page_size(request)
        assert page_size is not None
        return page_size, self.get_page_number(request, None)

    def _page_kept(self, request: Request, *, rows: list[Any], number: int, page_size: int, total: int) -> list[Any]:
        paginator = self.django_paginator_class([], page_size)
        paginator.__dict__["count"] = total  # the cached_property's slot
        self.request = request
        try:
            paginator.validate_number(number)
        except InvalidPage as exc:
            if self._past_end_number(request) is None:
                raise NotFound(self.invalid_page_message.format(page_number=number, message=str(exc))) from exc
            rows = []
        self.page = Page(rows, number, paginator)
        return rows

    def _past_end_number(self, request: Request) -> int | None:
        """The requested page number when empty pages are allowed and it is a positive number."""
        if not self.past_end_is_empty:
            return None
        raw = request.query_params.get(self.page_query_param, "")
        return int(raw) if raw.isdigit() and int(raw) > 1 else None

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(self.get_paginated_data(data))

    def get_paginated_data(self, data: list[Any]) -> dict[str, Any]:
        """The ``{count, page, limit, results}`` envelope of the page (what ``get_paginated_response`` answers)."""
        assert self.page is not None
        return {
            "count": self.page.paginator.count,
            "page": self.page.number,
            "limit": self.page.paginator.per_page,
            "results": data,
        }

    def get_list_response(self, data: list[Any]) -> Response:
        """The page as a bare JSON array; the pagination travels in headers."""
        return Response(data, headers=self.get_list_headers())

    def get_list_headers(self) -> dict[str, str]:
        """The pagination headers of ``get_list_response``."""
        assert self.page is not None
        if not self.page.object_list and self.page.number > self.page.paginator.num_pages:
            links = []  # past the end: neither neighbour is a page
        else:
            links = [
                f'<{url}>; rel="{rel}"'
                for rel, url in (("next", self.get_next_link()), ("prev", self.get_previous_link()))
                if url
            ]
        headers = {
            "X-Total-Count": str(self.page.paginator.count),
            "X-Page": str(self.page.number),
            "X-Per-Page": str(self.page.paginator.per_page),
        }
        if links:
            headers["Link"] = ", ".join(links)
        return headers

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


LIST_HEADERS_DESCRIPTION = "Pagination headers: X-Total-Count, X-Page, X-Per-Page and Link (rel next/prev)."
