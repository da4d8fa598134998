"""The task record's store: batched idempotent ingestion, reads, expiry.

One async layer (SQLAlchemy 2 asyncio) over SQLite (aiosqlite) or PostgreSQL
(asyncpg). :meth:`RecordStore.ingest` writes a batch of events in one
transaction: it inserts their event rows keyed by message id, skipping ids
already stored, and folds only the new ones into their tasks' rows, which it
holds locked (``SELECT … FOR UPDATE`` in task-id order on PostgreSQL; SQLite
has one writer at a time). A repeated event therefore changes nothing, and
two monitors ingesting at once never duplicate a row. Any database failure
surfaces as :class:`~boson_shared.errors.RecordUnavailableError`, so the
caller hands the batch back and loses nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, delete, event, func, or_, select, tuple_, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from boson_shared.contract.messages import (
    RECORD_QUERY_MAX_LIMIT,
    TaskProgress,
    TaskRecord,
    TaskResult,
    TaskState,
)
from boson_shared.errors import InvalidQueryError, RecordUnavailableError, TaskNotFoundError
from boson_shared.record import merge
from boson_shared.record.location import async_url, sqlite_path
from boson_shared.record.migrate import upgrade
from boson_shared.record.schema import events, tasks

DEFAULT_TTL_S = 7 * 24 * 3600.0
DEFAULT_INLINE_MAX_BYTES = 256 * 1024
SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 60.0

_TASK_COLUMNS = [c.name for c in tasks.columns]
_UPDATED_COLUMNS = [name for name in _TASK_COLUMNS if name != "task_id"]
_CURSOR_SEPARATOR = "~"


@dataclass(frozen=True)
class TaskQuery:
    """A filter over the record, newest submissions first, one page at a time."""

    state: TaskState | None = None
    handler: str | None = None
    node_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= RECORD_QUERY_MAX_LIMIT:
            raise InvalidQueryError(f"limit must be 1..{RECORD_QUERY_MAX_LIMIT}, not {self.limit}")
        if self.state is not None and self.state not in merge.RANK:
            raise InvalidQueryError(f"unknown state {self.state!r}")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidQueryError("since is after until")
        if self.cursor is not None:
            decode_cursor(self.cursor)


@dataclass(frozen=True)
class Page:
    records: tuple[TaskRecord, ...]
    next_cursor: str | None


def encode_cursor(submitted_at: float, task_id: str) -> str:
    return f"{submitted_at!r}{_CURSOR_SEPARATOR}{task_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (submitted_at, task_id) a page ended at; :class:`InvalidQueryError` if garbled."""
    at, separator, task_id = cursor.partition(_CURSOR_SEPARATOR)
    try:
        value = float(at)
    except ValueError as e:
        raise InvalidQueryError(f"malformed cursor {cursor[:80]!r}") from e
    if not separator or not task_id or value != value:
        raise InvalidQueryError(f"malformed cursor {cursor[:80]!r}")
    return value, task_id


class RecordStore:
    """The record over one database (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.inline_max_bytes = inline_max_bytes
        self.clock = clock
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str, **options: Any) -> RecordStore:
        """A store for ``url`` (no I/O yet: :meth:`migrate` connects first)."""
        return cls(create_engine(async_url(url)), **options)

    async def migrate(self) -> None:
        """Bring the schema to the latest revision (safe with several monitors)."""
        async with self._guard("migrating"):
            await upgrade(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- ingestion -----------------------------------------------------------

    async def ingest(self, batch: Sequence[merge.RecordEvent]) -> int:
        """Store a batch of events in one transaction; how many were new."""
        unique = {merge.event_id(e): e for e in batch}
        if not unique:
            return 0
        async with self._guard("ingesting"), self.engine.begin() as conn:
            fresh_ids = await self._insert_events(conn, list(unique.values()))
            fresh = [unique[i] for i in unique if i in fresh_ids]
            if not fresh:
                return 0
            await self._fold(conn, fresh)
        return len(fresh)

    async def _insert_events(
        self, conn: AsyncConnection, batch: list[merge.RecordEvent]
    ) -> set[str]:
        rows = [merge.event_row(e) for e in batch]
        statement = (
            self._insert(events)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(events.c.event_id)
        )
        result = await conn.execute(statement, rows)
        return {row[0] for row in result}

    async def _fold(self, conn: AsyncConnection, fresh: list[merge.RecordEvent]) -> None:
        now = self.clock()
        firsts: dict[str, merge.RecordEvent] = {}
        for item in fresh:
            firsts.setdefault(item.task_id, item)
        task_ids = sorted(firsts)
        skeletons = [merge.new_row(firsts[t], now=now, ttl_s=self.ttl_s) for t in task_ids]
        await conn.execute(
            self._insert(tasks).on_conflict_do_nothing(index_elements=["task_id"]),
            [_complete(row) for row in skeletons],
        )
        query = select(tasks).where(tasks.c.task_id.in_(task_ids)).order_by(tasks.c.task_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        rows = {row["task_id"]: dict(row) for row in (await conn.execute(query)).mappings()}
        changed: set[str] = set()
        for item in sorted(fresh, key=_arrival_order):
            row = rows[item.task_id]
            if merge.fold(
                row, item, now=now, ttl_s=self.ttl_s, inline_max_bytes=self.inline_max_bytes
            ):
                changed.add(item.task_id)
        if not changed:
            return
        statement = (
            update(tasks)
            .where(tasks.c.task_id == bindparam("key_task_id"))
            .values({name: bindparam(name) for name in _UPDATED_COLUMNS})
        )
        await conn.execute(
            statement,
            [
                {"key_task_id": task_id, **{n: rows[task_id].get(n) for n in _UPDATED_COLUMNS}}
                for task_id in sorted(changed)
            ],
        )

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
        async with self._guard("reading"), self.engine.connect() as conn:
            row = (
                (await conn.execute(select(tasks).where(tasks.c.task_id == task_id)))
                .mappings()
                .first()
            )
            if row is None:
                raise TaskNotFoundError(f"no task {task_id!r} in the record")
            entries: list[dict[str, Any]] = []
            if timeline:
                query = (
                    select(events)
                    .where(events.c.task_id == task_id)
                    .order_by(events.c.at, events.c.event_id)
                )
                entries = [dict(e) for e in (await conn.execute(query)).mappings()]
        entries.sort(key=lambda e: (e["at"], merge.RANK.get(e["stage"], 9)))
        return merge.to_record(dict(row), entries)

    async def list(self, query: TaskQuery) -> Page:
        """A page of records matching ``query``, newest submission first."""
        statement = _filtered(select(tasks), query)
        async with self._guard("reading"), self.engine.connect() as conn:
            rows = [dict(r) for r in (await conn.execute(statement)).mappings()]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more and rows:
            cursor = encode_cursor(rows[-1]["submitted_at"], rows[-1]["task_id"])
        return Page(tuple(merge.to_record(row) for row in rows), cursor)

    async def count(self, state: TaskState | None = None) -> int:
        statement = select(func.count()).select_from(tasks)
        if state is not None:
            statement = statement.where(tasks.c.state == state)
        async with self._guard("reading"), self.engine.connect() as conn:
            return int((await conn.execute(statement)).scalar_one())

    # -- retention -----------------------------------------------------------

    async def expire(self) -> int:
        """Delete records past their expiry (and their timelines); how many."""
        now = self.clock()
        expired = select(tasks.c.task_id).where(tasks.c.expires_at < now)
        async with self._guard("expiring"), self.engine.begin() as conn:
            await conn.execute(delete(events).where(events.c.task_id.in_(expired)))
            result = await conn.execute(delete(tasks).where(tasks.c.expires_at < now))
        return int(result.rowcount or 0)

    async def referenced_digests(self, limit: int) -> tuple[frozenset[str], bool]:
        """Blob digests the records refer to (inputs and outputs); and whether all of them."""
        inputs = select(tasks.c.input_ref.label("digest")).where(tasks.c.input_ref.is_not(None))
        outputs = select(tasks.c.output_ref.label("digest")).where(tasks.c.output_ref.is_not(None))
        statement = union(inputs, outputs).limit(limit + 1)
        async with self._guard("reading"), self.engine.connect() as conn:
            digests = [row[0] for row in await conn.execute(statement)]
        return frozenset(digests[:limit]), len(digests) <= limit

    @contextlib.asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        """Database failures become :class:`RecordUnavailableError` (retry later)."""
        try:
            yield
        except (SQLAlchemyError, OSError, TimeoutError) as e:
            raise RecordUnavailableError(f"task record {doing}: {_brief(e)}") from e


def _filtered(statement: Select[Any], query: TaskQuery) -> Select[Any]:
    conditions = []
    if query.state is not None:
        conditions.append(tasks.c.state == query.state)
    if query.handler is not None:
        conditions.append(tasks.c.handler == query.handler)
    if query.node_id is not None:
        conditions.append(tasks.c.node_id == query.node_id)
    if query.since is not None:
        conditions.append(tasks.c.submitted_at >= query.since)
    if query.until is not None:
        conditions.append(tasks.c.submitted_at < query.until)
    if query.cursor is not None:
        at, task_id = decode_cursor(query.cursor)
        # A row comparison, not "a < x OR (a = x AND b < y)": the database
        # turns it into a bound on the (submitted_at, task_id) index, so a
        # deep page starts where it should instead of filtering every newer row.
        conditions.append(tuple_(tasks.c.submitted_at, tasks.c.task_id) < tuple_(at, task_id))
    if conditions:
        statement = statement.where(*conditions)
    return statement.order_by(tasks.c.submitted_at.desc(), tasks.c.task_id.desc()).limit(
        query.limit + 1
    )


def _arrival_order(item: merge.RecordEvent) -> tuple[int, float]:
    """Fold a batch's events in life order: results after the steps before them."""
    if isinstance(item, TaskResult):
        return merge.RANK[item.status], item.finished_at
    return merge.RANK[item.stage], item.at


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """Every column present (executemany needs the same keys in each row)."""
    return {name: row.get(name) for name in _TASK_COLUMNS}


def _brief(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def create_engine(url: URL) -> AsyncEngine:
    """An async engine for ``url``; a SQLite file gets its directory, WAL and a busy wait."""
    path = sqlite_path(url)
    if path is None:
        # Bounded waits: a database that stops answering must fail the batch
        # (handed back to the queue), not hold the monitor's record forever.
        return create_async_engine(
            url,
            pool_pre_ping=True,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": COMMAND_TIMEOUT_S},
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

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
