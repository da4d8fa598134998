"""A page after a cursor is bounded on the index, however deep it is."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from boson_shared.record.schema import tasks
from boson_shared.record.store import TaskQuery, _filtered, encode_cursor


def test_the_cursor_is_a_row_comparison_the_index_can_bound() -> None:
    """Not ``a < x OR (a = x AND b < y)``, which PostgreSQL applies as a filter
    after scanning every newer row (a deep page then costs its depth)."""
    query = TaskQuery(cursor=encode_cursor(1_000.5, "task-7"), limit=50)
    for dialect in (postgresql.dialect(), sqlite.dialect()):  # type: ignore[no-untyped-call]
        sql = str(_filtered(select(tasks), query).compile(dialect=dialect))
        assert "(boson_tasks.submitted_at, boson_tasks.task_id) <" in sql
        assert " OR " not in sql
