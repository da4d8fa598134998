"""A page after a cursor is bounded on the index, however deep it is."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite

from boson_shared.record import reads
from boson_shared.record.schema import tasks
from boson_shared.record.store import RecordStore, TaskQuery, encode_cursor


def test_the_cursor_is_a_row_comparison_the_index_can_bound() -> None:
    """Not ``a < x OR (a = x AND b < y)``, which PostgreSQL applies as a filter
    after scanning every newer row (a deep page then costs its depth)."""
    query = TaskQuery(cursor=encode_cursor(1_000.5, "task-7"), limit=50)
    for dialect in (postgresql.dialect(), sqlite.dialect()):  # type: ignore[no-untyped-call]
        statement, _ = reads.page(query, outputs=True)
        sql = str(statement.compile(dialect=dialect))
        assert "(boson_tasks.submitted_at, boson_tasks.task_id) <" in sql
        assert " OR " not in sql


FILTERS = {
    "state": TaskQuery(state="failed"),
    "handler": TaskQuery(handler="echo"),
    "node": TaskQuery(node_id="n1"),
    "tenant": TaskQuery(tenant="a"),
}


async def test_a_filtered_page_is_read_in_order_off_its_filters_index(database_url: str) -> None:
    """Each filter's index ends in the list's order (submitted_at, task_id): no sort step.

    Checked on SQLite's plan (PostgreSQL's depends on its statistics); on both
    databases the migrated schema's indexes are the ones ``schema`` declares.
    """
    store = RecordStore.open(database_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            declared = {i.name: [c.name for c in i.columns] for i in tasks.indexes}
            migrated = await conn.run_sync(
                lambda sync: {
                    i["name"]: i["column_names"] for i in inspect(sync).get_indexes(tasks.name)
                }
            )
            assert {name: migrated.get(name) for name in declared} == declared
            if store.dialect != "sqlite":
                return
            for name, query in FILTERS.items():
                for page in (query, replace(query, cursor=encode_cursor(5.0, "t"))):
                    shape, params = reads.page(page, outputs=True)
                    statement = shape.params(params).compile(
                        dialect=sqlite.dialect(),
                        compile_kwargs={"literal_binds": True},
                    )
                    plan = " | ".join(
                        str(row[-1])
                        for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}")
                    )
                    assert f"ix_boson_tasks_{name}" in plan, plan
                    assert "TEMP B-TREE" not in plan, plan
    finally:
        await store.close()
