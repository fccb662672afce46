"""What PostgreSQL does to answer one page of a compiled list query, for tests that pin a plan."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.db import connection

from apps.core.compiled_queries import CompiledQuery


def _plan_nodes(node: dict, *, in_init_plan: bool = False) -> Iterator[tuple[dict, bool]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, with whether it belongs to an InitPlan."""
    inside = in_init_plan or node.get("Parent Relationship") == "InitPlan"
    yield node, inside
    for child in node.get("Plans", []):
        yield from _plan_nodes(child, in_init_plan=inside)


def most_rows_of_a_page_step(
    query: CompiledQuery, values: Mapping[str, Any], *, limit: int, offset: int, with_count: bool = False
) -> int:
    """The most rows any step outside an InitPlan (a count run once) handled to answer the page
    ``limit``/``offset`` of ``query``'s ``rows``; ``with_count`` looks inside the InitPlans too.
    Sequential scans and sorts are disabled for the transaction, standing in for a table large
    enough that its indexes pay."""
    compiled = query._compile("rows")
    params = [*query._bound(compiled, dict(values), connection), limit, offset]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + compiled.sql, params)
        (plan,) = cursor.fetchone()[0]
    return max(node["Actual Rows"] for node, in_count in _plan_nodes(plan["Plan"]) if with_count or not in_count)
