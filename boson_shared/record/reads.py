"""The record's reads as statements: one task with its timeline, a filtered page.

Every statement is built once (or once per combination of filters) and
kept: SQLAlchemy keys its compiled-SQL cache by a statement's structure and
works that key out again for every new statement object, a measurable part
of a read's CPU time. Their rows come back as plain tuples and become
records by position (:class:`boson_shared.record.rows.RowShape`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    CompoundSelect,
    Float,
    Integer,
    Select,
    String,
    bindparam,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    union_all,
)

from boson_shared.contract.base import DEFAULT_TENANT
from boson_shared.contract.messages import RECORD_QUERY_MAX_LIMIT, TaskRecord, TaskState
from boson_shared.errors import InvalidQueryError
from boson_shared.record.merge import RANK
from boson_shared.record.rows import LISTED_COLUMNS, RECORD_COLUMNS, RowShape
from boson_shared.record.schema import events, tasks

TASK_BY_ID = select(*RECORD_COLUMNS).where(tasks.c.task_id == bindparam("task_id"))
_TIMELINE_COLUMNS = ("stage", "at", "node_id", "source")
# A task's row and its timeline in one statement (one round trip, and one
# pass through the async layers, instead of two): the task's row first
# (part 0), then its events in order (part 1), each padded with NULLs to
# the other's columns.
TASK_AND_TIMELINE: CompoundSelect[*tuple[Any, ...]] = union_all(
    select(
        literal_column("0", Integer).label("part"),
        *RECORD_COLUMNS,
        *(null().label(f"event_{name}") for name in (*_TIMELINE_COLUMNS, "id")),
    ).where(tasks.c.task_id == bindparam("task_id")),
    select(
        literal_column("1", Integer),
        *(null() for _ in RECORD_COLUMNS),
        *(events.c[name] for name in (*_TIMELINE_COLUMNS, "event_id")),
    ).where(events.c.task_id == bindparam("task_id")),
).order_by("part", "event_at", "event_id")
RECORD_NAMES = tuple(c.name for c in RECORD_COLUMNS)
"""The columns of :data:`TASK_BY_ID` and of a page with outputs, in order."""
LISTED_NAMES = tuple(c.name for c in LISTED_COLUMNS)
"""The columns of a page without outputs, in order."""
RECORD_ROWS = RowShape(RECORD_NAMES)
"""Rows of :data:`TASK_BY_ID` (and a page with outputs) as records."""
LISTED_ROWS = RowShape(LISTED_NAMES)
"""Rows of a page without outputs as records."""
_CURSOR_SEPARATOR = "~"


@dataclass(frozen=True)
class TaskQuery:
    """A filter over the record, newest submissions first, one page at a time."""

    state: TaskState | None = None
    handler: str | None = None
    node_id: str | None = None
    tenant: str | None = None
    """The tenant's tasks; ``default`` includes those recorded before tasks had one."""
    since: float | None = None
    until: float | None = None
    limit: int = 50
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= RECORD_QUERY_MAX_LIMIT:
            raise InvalidQueryError(f"limit must be 1..{RECORD_QUERY_MAX_LIMIT}, not {self.limit}")
        if self.state is not None and self.state not in RANK:
            raise InvalidQueryError(f"unknown state {self.state!r}")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidQueryError("since is after until")
        if self.cursor is not None:
            decode_cursor(self.cursor)


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


def one_task(found: Sequence[Sequence[Any]], *, timeline: bool) -> TaskRecord | None:
    """The record in the rows of :data:`TASK_AND_TIMELINE` (``timeline``) or
    :data:`TASK_BY_ID`; none if they hold no task's row."""
    if not found:
        return None
    if not timeline:
        return RECORD_ROWS.record(found[0])
    if found[0][0] != 0:
        return None  # events without their task's row
    width = len(RECORD_NAMES)
    row = found[0][1 : 1 + width]
    entries = [
        dict(zip(_TIMELINE_COLUMNS, event[1 + width : -1], strict=True)) for event in found[1:]
    ]
    if not any(e["stage"] == "submitted" for e in entries):
        # A placed task's submission came with its placement: no event of its own.
        entries.append(
            {
                "stage": "submitted",
                "at": row[RECORD_ROWS.submitted_at],
                "node_id": None,
                "source": None,
            }
        )
    entries.sort(key=lambda e: (e["at"], RANK.get(e["stage"], 9)))
    return RECORD_ROWS.record(row, entries)


_TenantFilter = Literal["default", "named"] | None
"""How a page filters by tenant: not, ``default`` (with untenanted rows) or another."""


def page(query: TaskQuery, *, outputs: bool) -> tuple[Select[Any], dict[str, Any]]:
    """The statement of one page of ``query`` and its parameters.

    The statement depends only on which filters are set (built once per
    combination and kept: SQLAlchemy would otherwise work out a new
    statement's cache key again on every read, about a fifth of the store's
    CPU time for a page); the values travel as parameters.
    """
    tenant: _TenantFilter = None
    if query.tenant is not None:
        tenant = "default" if query.tenant == DEFAULT_TENANT else "named"
    params: dict[str, Any] = {"limit": query.limit + 1}
    for name in ("state", "handler", "node_id", "since", "until"):
        value = getattr(query, name)
        if value is not None:
            params[name] = value
    if query.tenant is not None:
        params["tenant"] = query.tenant
    if query.cursor is not None:
        params["cursor_at"], params["cursor_task_id"] = decode_cursor(query.cursor)
    statement = _page_statement(
        outputs,
        state=query.state is not None,
        handler=query.handler is not None,
        node_id=query.node_id is not None,
        tenant=tenant,
        since=query.since is not None,
        until=query.until is not None,
        cursor=query.cursor is not None,
    )
    return statement, params


@functools.cache  # at most 2 column sets × 3 tenant forms × 2**6 other filters
def _page_statement(
    outputs: bool,
    *,
    state: bool,
    handler: bool,
    node_id: bool,
    tenant: _TenantFilter,
    since: bool,
    until: bool,
    cursor: bool,
) -> Select[Any]:
    statement = select(*(RECORD_COLUMNS if outputs else LISTED_COLUMNS))
    conditions = []
    for wanted, column in ((state, "state"), (handler, "handler"), (node_id, "node_id")):
        if wanted:
            conditions.append(tasks.c[column] == bindparam(column))
    if tenant == "default":
        # ``default`` includes what was recorded before tasks had a tenant.
        conditions.append(or_(tasks.c.tenant == bindparam("tenant"), tasks.c.tenant.is_(None)))
    elif tenant == "named":
        conditions.append(tasks.c.tenant == bindparam("tenant"))
    if since:
        conditions.append(tasks.c.submitted_at >= bindparam("since"))
    if until:
        conditions.append(tasks.c.submitted_at < bindparam("until"))
    if cursor:
        # A row comparison, not "a < x OR (a = x AND b < y)": the database
        # turns it into a bound on the (submitted_at, task_id) index, so a
        # deep page starts where it should instead of filtering every newer row.
        conditions.append(
            tuple_(tasks.c.submitted_at, tasks.c.task_id)
            < tuple_(bindparam("cursor_at", type_=Float), bindparam("cursor_task_id", type_=String))
        )
    if conditions:
        statement = statement.where(*conditions)
    return statement.order_by(tasks.c.submitted_at.desc(), tasks.c.task_id.desc()).limit(
        bindparam("limit", type_=Integer)
    )


__all__ = [
    "LISTED_NAMES",
    "LISTED_ROWS",
    "RECORD_NAMES",
    "RECORD_ROWS",
    "TASK_AND_TIMELINE",
    "TASK_BY_ID",
    "TaskQuery",
    "decode_cursor",
    "encode_cursor",
    "one_task",
    "page",
]
