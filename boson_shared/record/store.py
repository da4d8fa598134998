"""The task record's store: batched idempotent ingestion, reads, expiry.

One async layer (SQLAlchemy 2 asyncio) over SQLite (aiosqlite) or PostgreSQL
(asyncpg). :meth:`RecordStore.ingest` writes a batch of events in one
transaction of two or three statements, whatever its size: it inserts their
event rows keyed by message id, skipping ids already stored, and folds only
the new ones into their tasks' rows — all of a task's events at once, merged
by the database into the stored row without reading it
(:mod:`boson_shared.record.upsert`), in task-id order. A repeated event
therefore changes nothing, and two monitors ingesting at once never duplicate
a row. Any database failure
surfaces as :class:`~boson_shared.errors.RecordUnavailableError`, so the
caller hands the batch back and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from pydantic_core import from_json
from sqlalchemy import (
    bindparam,
    delete,
    event,
    func,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable
from sqlalchemy.util import greenlet_spawn

from boson_shared.contract.messages import (
    TaskProgress,
    TaskRecord,
    TaskResult,
    TaskState,
)
from boson_shared.errors import RecordUnavailableError, TaskNotFoundError
from boson_shared.record import merge, reads, upsert
from boson_shared.record.location import async_url, sqlite_path
from boson_shared.record.migrate import upgrade
from boson_shared.record.reads import TaskQuery, decode_cursor, encode_cursor
from boson_shared.record.schema import events, tasks, tenant_samples

DEFAULT_TTL_S = 7 * 24 * 3600.0
DEFAULT_INLINE_MAX_BYTES = 256 * 1024
SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 60.0
CONNECTION_WAIT_S = 10.0
"""How long a read waits for a busy bounded pool's next free connection."""
CLOSE_TIMEOUT_S = 3.0
"""How long :meth:`RecordStore.close` waits for the pool's connections to close
(PostgreSQL's goodbye waits for the server's): a database that stopped answering
must not hold a stop, which has only a few seconds left after its drain."""

logger = logging.getLogger(__name__)

_EVENT_COLUMNS = ("event_id", "task_id", "stage", "at", "node_id", "source")
_PG_INSERT_EVENTS = (
    f"INSERT INTO {events.name} ({', '.join(_EVENT_COLUMNS)}) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], "
    "$5::text[], $6::text[]) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


@dataclass(frozen=True)
class Page:
    records: tuple[TaskRecord, ...]
    next_cursor: str | None


class RecordStore:
    """The record over one database (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        reads_only: bool = False,
    ) -> None:
        self.engine = engine
        self.reads_only = reads_only
        """Every statement in autocommit mode (see :meth:`open`)."""
        self.ttl_s = ttl_s
        self.inline_max_bytes = inline_max_bytes
        self.clock = clock
        self.dialect = engine.dialect.name

    @classmethod
    def open(
        cls,
        url: str,
        *,
        pre_ping: bool = True,
        reads_only: bool = False,
        connections: int | None = None,
        **options: Any,
    ) -> RecordStore:
        """A store for ``url`` (no I/O yet: :meth:`migrate` connects first).

        ``pre_ping=False`` skips the round trip that checks a pooled
        connection before each use: for a reader that may fail one read
        (the pool then drops the broken connection) rather than pay for it
        on every read. ``reads_only=True`` runs every statement in
        autocommit mode: no ``BEGIN`` before a read and no ``ROLLBACK``
        when its connection goes back to the pool, two round trips fewer
        per read, for a store that never writes. Each statement sees what
        was committed when it started, as within a read-committed
        transaction, so a read answers the same; and a read gives its
        connection back in place (see :meth:`rows`).

        ``connections`` keeps exactly that many connections open once made
        and never more: a read that finds them all busy waits for one (up to
        :data:`CONNECTION_WAIT_S`, then :class:`RecordUnavailableError`).
        Without it the pool is SQLAlchemy's default, which opens overflow
        connections under a burst and closes each as soon as it is returned,
        so a steady reader with more concurrent reads than the pool's size
        pays a new connection (and its first statements' preparation) on
        many of its reads.
        """
        engine = create_engine(
            async_url(url), pre_ping=pre_ping, autocommit=reads_only, connections=connections
        )
        return cls(engine, reads_only=reads_only, **options)

    async def migrate(self) -> None:
        """Bring the schema to the latest revision (safe with several monitors)."""
        async with self._guard("migrating"):
            await upgrade(self.engine)

    async def close(self, *, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Close the pool's connections, waiting at most ``timeout`` seconds;
        past that they are left to end with the process."""
        try:
            async with asyncio.timeout(timeout):
                await self.engine.dispose()
        except TimeoutError:
            logger.warning(
                "task record: its database connections did not close within %.1fs; "
                "left to end with the process",
                timeout,
            )

    # -- ingestion -----------------------------------------------------------

    async def ingest(self, batch: Sequence[merge.RecordEvent]) -> int:
        """Store a batch of events in one transaction; how many were new."""
        return len(await self.ingest_new(batch))

    async def ingest_new(self, batch: Sequence[merge.RecordEvent]) -> list[merge.RecordEvent]:
        """Store a batch of events in one transaction; the events it was the
        first to store (committed), in the batch's order — so whoever counts
        them counts each event once, however often it is delivered and
        whichever monitor took it."""
        unique = {merge.event_id(e): e for item in batch for e in merge.expand(item)}
        if not unique:
            return []
        async with self._guard("ingesting"), self.engine.begin() as conn:
            fresh_ids = await self._insert_events(conn, list(unique.values()))
            fresh = [unique[i] for i in unique if i in fresh_ids]
            if not fresh:
                return []
            await self._fold(conn, fresh)
        return fresh

    async def _insert_events(
        self, conn: AsyncConnection, batch: list[merge.RecordEvent]
    ) -> set[str]:
        # In event-id order, whatever the batch's: two transactions taking the
        # same new events (two monitors, a redelivery) then wait on each other's
        # uncommitted rows in one order, never in a cycle that PostgreSQL
        # would break by aborting one of them as a deadlock.
        rows = sorted((merge.event_row(e) for e in batch), key=itemgetter("event_id"))
        if self.dialect == "postgresql":
            columns = [[row[name] for row in rows] for name in _EVENT_COLUMNS]
            result = await conn.exec_driver_sql(_PG_INSERT_EVENTS, tuple(columns))
        else:
            statement = (
                sqlite.insert(events)
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(events.c.event_id)
            )
            result = await conn.execute(statement, rows)
        return {row[0] for row in result}

    async def _fold(self, conn: AsyncConnection, fresh: list[merge.RecordEvent]) -> None:
        """Fold the new events into their tasks' rows without reading them.

        All of a task's new events fold into one delta, in life order; one
        merging insert writes every task's delta, in task-id order, and
        leaves alone the rows that hold their outcome already; those only
        take the batch's steps into their empty columns
        (:mod:`boson_shared.record.upsert`).
        """
        now = self.clock()
        by_task: dict[str, list[merge.RecordEvent]] = {}
        for item in sorted(fresh, key=_arrival_order):
            by_task.setdefault(item.task_id, []).append(item)
        task_ids = sorted(by_task)
        deltas = [self._delta(by_task[task_id], now) for task_id in task_ids]
        dialect = self.dialect
        statement = upsert.upsert_sql(dialect)
        params = upsert.upsert_params(dialect, deltas)
        if dialect == "postgresql":
            # The finished rows are the ones the merge left out. (Asked
            # before the merge instead, another monitor could finish a row
            # in between, and this batch's steps would be lost for it.)
            merged = {row[0] for row in await conn.exec_driver_sql(statement, params)}
            await self._late_steps(conn, [t for t in task_ids if t not in merged], by_task, now)
        else:
            # SQLite has one writer, which this transaction already is (it
            # wrote the events), and its executemany returns no rows: fill
            # the finished rows first, then merge (which leaves them alone).
            await self._late_steps(conn, task_ids, by_task, now)
            await conn.exec_driver_sql(statement, params)

    async def _late_steps(
        self,
        conn: AsyncConnection,
        task_ids: Sequence[str],
        by_task: dict[str, list[merge.RecordEvent]],
        now: float,
    ) -> None:
        """Fill the empty step columns of those of ``task_ids`` whose row is finished."""
        late: list[merge.Row] = []
        for task_id in task_ids:
            steps = [item for item in by_task[task_id] if not isinstance(item, TaskResult)]
            if steps:
                late.append(self._delta(steps, now))
        if late:
            params = upsert.late_steps_params(self.dialect, late, now)
            await conn.exec_driver_sql(upsert.late_steps_sql(self.dialect), params)

    def _delta(self, items: Sequence[merge.RecordEvent], now: float) -> merge.Row:
        """The row ``items`` alone make (``items`` of one task, in life order)."""
        row = merge.new_row(items[0], now=now, ttl_s=self.ttl_s)
        for item in items:
            merge.fold(row, item, now=now, ttl_s=self.ttl_s, inline_max_bytes=self.inline_max_bytes)
        return row

    async def record_progress(self, reports: Sequence[TaskProgress]) -> int:
        """Keep each task's latest progress report (latest wins, by its time); how many rows.

        Not a timeline event: a report changes only the progress columns,
        and only with a report made before the task finished (whichever of
        the two the record takes first). A report that arrives before its
        task's row (the record lagging) changes nothing.
        """
        latest: dict[str, TaskProgress] = {}
        for report in reports:
            kept = latest.get(report.task_id)
            if kept is None or report.at >= kept.at:
                latest[report.task_id] = report
        if not latest:
            return 0
        statement = (
            update(tasks)
            .where(
                tasks.c.task_id == bindparam("key_task_id"),
                or_(tasks.c.finished_at.is_(None), tasks.c.finished_at >= bindparam("key_at")),
                or_(tasks.c.progress_at.is_(None), tasks.c.progress_at <= bindparam("key_at")),
            )
            .values(
                progress=bindparam("progress"),
                progress_message=bindparam("progress_message"),
                progress_at=bindparam("key_at"),
                updated_at=bindparam("updated_at"),
            )
        )
        now = self.clock()
        rows = [
            {
                "key_task_id": report.task_id,
                "key_at": report.at,
                "progress": report.fraction,
                "progress_message": report.message.replace("\x00", ""),
                "updated_at": now,
            }
            for report in sorted(latest.values(), key=lambda r: r.task_id)
        ]
        async with self._guard("recording progress"), self.engine.begin() as conn:
            await conn.execute(statement, rows)
        return len(rows)

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    # -- reading -------------------------------------------------------------

    async def get(self, task_id: str, *, timeline: bool = True) -> TaskRecord:
        """One task's record; :class:`TaskNotFoundError` if the record has none."""
        statement = reads.TASK_AND_TIMELINE if timeline else reads.TASK_BY_ID
        async with self._guard("reading"):
            found = await self.rows(statement, {"task_id": task_id})
        record = reads.one_task(found, timeline=timeline)
        if record is None:
            raise TaskNotFoundError(f"no task {task_id!r} in the record")
        return record

    async def list(self, query: TaskQuery, *, outputs: bool = True) -> Page:
        """A page of records matching ``query``, newest submission first.

        ``outputs=False`` leaves each record's output and logs out (``None``)
        without reading them: a page that does not show them need not carry
        up to the inline bound of output per row from the database.
        """
        statement, params = reads.page(query, outputs=outputs)
        shape = reads.RECORD_ROWS if outputs else reads.LISTED_ROWS
        async with self._guard("reading"):
            found = await self.rows(statement, params)
        more = len(found) > query.limit
        found = found[: query.limit]
        cursor = None
        if more and found:
            last = found[-1]
            cursor = reads.encode_cursor(last[shape.submitted_at], last[shape.task_id])
        return Page(tuple(shape.records(found)), cursor)

    async def count(self, state: TaskState | None = None) -> int:
        statement = select(func.count()).select_from(tasks)
        if state is not None:
            statement = statement.where(tasks.c.state == state)
        async with self._guard("reading"):
            (found,) = await self.rows(statement)
        return int(found[0])

    # -- retention -----------------------------------------------------------

    async def expire(self) -> int:
        """Delete records past their expiry (and their timelines, and the
        tenants' samples past theirs); how many records."""
        now = self.clock()
        expired = select(tasks.c.task_id).where(tasks.c.expires_at < now)
        async with self._guard("expiring"), self.engine.begin() as conn:
            await conn.execute(delete(tenant_samples).where(tenant_samples.c.expires_at < now))
            await conn.execute(delete(events).where(events.c.task_id.in_(expired)))
            result = await conn.execute(delete(tasks).where(tasks.c.expires_at < now))
        return int(result.rowcount or 0)

    async def referenced_digests(self, limit: int) -> tuple[frozenset[str], bool]:
        """Blob digests the records refer to (inputs and outputs); and whether all of them."""
        inputs = select(tasks.c.input_ref.label("digest")).where(tasks.c.input_ref.is_not(None))
        outputs = select(tasks.c.output_ref.label("digest")).where(tasks.c.output_ref.is_not(None))
        statement = union(inputs, outputs).limit(limit + 1)
        async with self._guard("reading"):
            digests = [row[0] for row in await self.rows(statement)]
        return frozenset(digests[:limit]), len(digests) <= limit

    async def rows(
        self, statement: Executable, params: dict[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """The rows of one read's ``statement``, on a pooled connection.

        SQLAlchemy's ``async with engine.connect()`` gives the connection
        back from a task of its own, shielded, so that a cancelled caller
        cannot abandon a rollback halfway: more turns of the event loop
        before the read's caller runs again, each one behind whatever else
        is ready on a busy loop. A reads-only store has no transaction to
        roll back: it runs the checkout, the statement and the return to the
        pool in one pass through SQLAlchemy's async layer (one greenlet, as
        :meth:`AsyncConnection.run_sync` runs its function), and the read
        waits only for its statement's round trip.
        """
        if not self.reads_only:
            async with self.engine.connect() as conn:
                return (await conn.execute(statement, params or {})).all()
        return await greenlet_spawn(self._rows_in_greenlet, statement, params or {})

    def _rows_in_greenlet(
        self, statement: Executable, params: dict[str, Any]
    ) -> Sequence[Row[Any]]:
        with self.engine.sync_engine.connect() as conn:
            return conn.execute(statement, params).all()

    @contextlib.asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        """Database failures become :class:`RecordUnavailableError` (retry later)."""
        try:
            yield
        except (SQLAlchemyError, OSError, TimeoutError) as e:
            raise RecordUnavailableError(f"task record {doing}: {_brief(e)}") from e


def _arrival_order(item: merge.RecordEvent) -> tuple[int, float]:
    """Fold a batch's events in life order: results after the steps before them."""
    if isinstance(item, TaskResult):
        return merge.RANK[item.status], item.finished_at
    return merge.RANK[item.stage], item.at


def _brief(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def create_engine(
    url: URL, *, pre_ping: bool = True, autocommit: bool = False, connections: int | None = None
) -> AsyncEngine:
    """An async engine for ``url``; a SQLite file gets its directory, WAL and a busy wait.

    ``connections``: a pool of exactly that many, kept (see :meth:`RecordStore.open`).
    """
    path = sqlite_path(url)
    # JSON columns decoded by pydantic-core's parser: the same values as the
    # standard library's, at a fraction of its time per value.
    options: dict[str, Any] = {"json_deserializer": from_json}
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    if connections is not None:
        options.update(pool_size=connections, max_overflow=0, pool_timeout=CONNECTION_WAIT_S)
    if path is None:
        # Bounded waits: a database that stops answering must fail the batch
        # (handed back to the queue), not hold the monitor's record forever.
        return create_async_engine(
            url,
            pool_pre_ping=pre_ping,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": COMMAND_TIMEOUT_S},
            **options,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **options
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


__all__ = [
    "DEFAULT_INLINE_MAX_BYTES",
    "DEFAULT_TTL_S",
    "Page",
    "RecordStore",
    "TaskQuery",
    "create_engine",
    "decode_cursor",
    "encode_cursor",
]
