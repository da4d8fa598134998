"""The task record as the dashboard shows it: a page of tasks, one task in full.

Reads go through :func:`boson_services.monitor.record.answer` — the function
that answers ``boson tasks`` and ``boson task`` over the bus — on a store of
the dashboard's own (the same database, its own connections on the
dashboard's loop), so the page and the CLI run the same query and never
disagree. This module shapes what the record answers for the task page:
demand against measured use, a preview of the result, the placement.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import Field

from boson_services.monitor.dashboard.present import Out
from boson_services.monitor.record import answer
from boson_shared.contract.messages import (
    TERMINAL_STATES,
    PlacementExplanation,
    RecordQuery,
    TaskRecord,
    TaskState,
)
from boson_shared.errors import (
    InvalidQueryError,
)
from boson_shared.record.replies import first_problem, raise_for
from boson_shared.record.store import RecordStore

READER_ID = "dashboard"
PREVIEW_MAX_CHARS = 2000
EXPLAINED_NODES_MAX = 20
CPU_SECONDS_PER_UNIT = 1.0
BYTES_PER_UNIT = float(2**20)
"""How measured use becomes demand units on the page: the online demand
model's default conversions (a CPU-second, a MiB of peak memory)."""


class TasksPage(Out):
    """A page of the record, newest submission first (outputs left out)."""

    tasks: list[TaskRecord]
    next_cursor: Annotated[
        str | None, Field(description="pass as ``cursor`` for the next page; none: last page")
    ]
    limit: int


class Preview(Out):
    """The start of a task's result, as text."""

    kind: Literal["none", "inline", "stored", "omitted"]
    text: str | None = None
    truncated: bool = False
    size_bytes: int | None = None
    digest: str | None = None


class UseLine(Out):
    """One resource: what the task was placed for, against what it used."""

    resource: Literal["cpu", "memory", "gpu"]
    demand: float | None
    measured: Annotated[float | None, Field(description="in demand units; none if not measured")]
    measured_as: str


class Placement(Out):
    """Where the task went and why, as far as the monitor knows."""

    node_id: Annotated[str | None, Field(description="where it ran (or runs, or waits)")]
    placed_on: Annotated[str | None, Field(description="where the scheduler placed it")]
    strategy: str | None
    summary: str
    explanation: Annotated[
        PlacementExplanation | None,
        Field(
            description="every node's fit and score, best first and cut short, for a recent "
            "task submitted with explain"
        ),
    ] = None
    explained_nodes: int = 0


class TaskDetail(Out):
    """One task, for its page."""

    record: Annotated[TaskRecord, Field(description="the record, as ``boson task`` shows it")]
    terminal: bool
    duration_s: float | None
    use: list[UseLine]
    preview: Preview
    placement: Placement


def record_query(**fields: Any) -> RecordQuery:
    """A :class:`RecordQuery` from the dashboard, or :class:`InvalidQueryError` naming the field."""
    try:
        return RecordQuery(reply_to=READER_ID, **fields)
    except ValueError as error:
        raise InvalidQueryError(f"bad request: {first_problem(error)}") from error


class TaskReader:
    """The record, read for the dashboard (on the dashboard's own loop)."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    async def page(
        self,
        *,
        state: TaskState | None = None,
        handler: str | None = None,
        node_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TasksPage:
        query = record_query(
            state=state,
            handler=handler,
            node_id=node_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        reply = await answer(self.store, query)
        raise_for(reply)
        return TasksPage(tasks=list(reply.records), next_cursor=reply.next_cursor, limit=limit)

    async def record(self, task_id: str) -> TaskRecord:
        reply = await answer(self.store, record_query(task_id=task_id))
        raise_for(reply)
        return reply.records[0]

    async def close(self) -> None:
        await self.store.close()


def detail(record: TaskRecord, explanation: PlacementExplanation | None) -> TaskDetail:
    """The task page's content for ``record``."""
    duration = None
    if record.finished_at is not None:
        duration = max(0.0, record.finished_at - (record.started_at or record.submitted_at))
    return TaskDetail(
        record=record.model_copy(update={"output": None}),
        terminal=record.state in TERMINAL_STATES,
        duration_s=duration,
        use=use_lines(record),
        preview=preview(record),
        placement=placement(record, explanation),
    )


def use_lines(record: TaskRecord) -> list[UseLine]:
    demand = record.demand
    usage = record.usage
    return [
        UseLine(
            resource="cpu",
            demand=demand.cpu if demand is not None else None,
            measured=usage.cpu_s / CPU_SECONDS_PER_UNIT if usage is not None else None,
            measured_as="CPU-seconds used",
        ),
        UseLine(
            resource="memory",
            demand=demand.memory if demand is not None else None,
            measured=usage.peak_memory_bytes / BYTES_PER_UNIT if usage is not None else None,
            measured_as="peak MiB resident",
        ),
        UseLine(
            resource="gpu",
            demand=demand.gpu if demand is not None else None,
            measured=None,
            measured_as="not reported by executors",
        ),
    ]


def preview(record: TaskRecord) -> Preview:
    if record.output_omitted:
        return Preview(kind="omitted")
    if record.output_ref is not None:
        return Preview(
            kind="stored", size_bytes=record.output_ref.size, digest=record.output_ref.digest
        )
    if record.state != "succeeded":
        return Preview(kind="none")  # failed, cancelled, or not finished
    text, whole = _indented_start(record.output, PREVIEW_MAX_CHARS)
    if whole:
        return Preview(kind="inline", text=text, size_bytes=len(text.encode()))
    # Cut: the size is the compact JSON's, which the C encoder writes in one
    # pass (the indented form is written in Python, many times slower).
    compact = json.dumps(record.output, default=repr, ensure_ascii=False, separators=(",", ":"))
    return Preview(kind="inline", text=text, truncated=True, size_bytes=len(compact.encode()))


def _indented_start(value: Any, limit: int) -> tuple[str, bool]:
    """The first ``limit`` characters of ``value`` as indented JSON, and whether
    that is all of it: encoding stops there, so an inline result of up to the
    record's bound costs the dashboard's thread no more than its preview."""
    encoder = json.JSONEncoder(indent=2, default=repr, ensure_ascii=False)
    parts: list[str] = []
    size = 0
    for part in encoder.iterencode(value):
        parts.append(part)
        size += len(part)
        if size > limit:
            return "".join(parts)[:limit], False
    return "".join(parts), True


def placement(record: TaskRecord, explanation: PlacementExplanation | None) -> Placement:
    placed_on = next(
        (e.node_id for e in record.timeline if e.stage == "placed" and e.node_id is not None),
        record.node_id,
    )
    if record.node_id is None:
        summary = (
            "waiting: no node fits it yet"
            if record.state == "pending"
            else "not placed yet"
            if record.state == "submitted"
            else "no node recorded"
        )
    else:
        how = f" by the {record.strategy} strategy" if record.strategy else ""
        summary = f"placed on {placed_on}{how}"
        if record.demand is not None:
            d = record.demand
            summary += f" for cpu {d.cpu:g}, memory {d.memory:g}, gpu {d.gpu:g} demand units"
        if placed_on != record.node_id:
            summary += f"; the balancer moved it to {record.node_id}"
        if record.dispatches > 1:
            summary += f"; dispatched {record.dispatches} times"
    if explanation is None:
        return Placement(
            node_id=record.node_id,
            placed_on=placed_on,
            strategy=record.strategy,
            summary=summary,
        )
    ranked = sorted(
        explanation.nodes,
        key=lambda n: (not n.fits, -(n.score if n.score is not None else -math.inf), n.node_id),
    )
    cut = explanation.model_copy(update={"nodes": tuple(ranked[:EXPLAINED_NODES_MAX])})
    return Placement(
        node_id=record.node_id,
        placed_on=placed_on,
        strategy=record.strategy,
        summary=summary,
        explanation=cut,
        explained_nodes=len(explanation.nodes),
    )


__all__ = [
    "PREVIEW_MAX_CHARS",
    "Placement",
    "Preview",
    "TaskDetail",
    "TaskReader",
    "TasksPage",
    "UseLine",
    "detail",
    "placement",
    "preview",
    "record_query",
    "use_lines",
]
