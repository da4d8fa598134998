"""``GET /api/tasks`` (a filtered page of the record), ``GET /api/tasks/{id}``
(one task in full) and ``POST /api/tasks/{id}/cancel`` (an action).

The reads run the query ``boson tasks`` and ``boson task`` run (see
:mod:`boson_services.monitor.dashboard.tasks`); a record the monitor cannot
reach is a 503, an unknown task a 404, a bad filter a 400.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from boson_services.monitor.dashboard.present import Out
from boson_services.monitor.dashboard.security import Guard, ProblemError
from boson_services.monitor.dashboard.shared import JsonAnswer
from boson_services.monitor.dashboard.source import DashboardSource
from boson_services.monitor.dashboard.tasks import TaskDetail, TaskReader, TasksPage, detail
from boson_shared.contract.messages import TERMINAL_STATES, TaskRecord, TaskState
from boson_shared.errors import InvalidQueryError, RecordUnavailableError, TaskNotFoundError

MAX_PAGE = 200
LATEST_TIME = 1e11
"""Times beyond this (year 5138) are typing mistakes, not filters."""

TaskId = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9._:@-]{1,128}$", description="a task's id"),
]


class TaskFilters(BaseModel):
    """The query of ``GET /api/tasks``, validated as one model (one pass, not one per field)."""

    state: Annotated[TaskState | None, Field(description="only tasks in this state")] = None
    handler: Annotated[
        str | None,
        Field(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", description="handler"),
    ] = None
    node: Annotated[
        str | None,
        Field(max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$", description="placed on node"),
    ] = None
    since: Annotated[
        float | None, Field(ge=0, le=LATEST_TIME, description="submitted at or after (epoch s)")
    ] = None
    until: Annotated[
        float | None, Field(ge=0, le=LATEST_TIME, description="submitted before (epoch s)")
    ] = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    cursor: Annotated[
        str | None, Field(max_length=300, description="the previous page's next_cursor")
    ] = None


class CancelRequested(Out):
    task_id: str
    requested: bool
    state: TaskState
    """The task's state when asked."""


def add_routes(api: APIRouter, source: DashboardSource, guard: Guard) -> None:
    def reader() -> TaskReader:
        if source.tasks is None:
            raise ProblemError(404, "this monitor keeps no task record (BOSON_RECORD is off)")
        return source.tasks

    async def record_of(task_id: str) -> TaskRecord:
        try:
            return await reader().record(task_id)
        except TaskNotFoundError as error:
            raise ProblemError(404, f"no task {task_id} in the record") from error
        except RecordUnavailableError as error:
            raise ProblemError(503, str(error), {"Retry-After": "5"}) from error

    @api.get(
        "/api/tasks",
        response_model=TasksPage,
        tags=["tasks"],
        summary="A page of the task record, newest first (what `boson tasks` lists)",
    )
    async def tasks(filters: Annotated[TaskFilters, Query()]) -> JsonAnswer:
        state, handler, node = filters.state, filters.handler, filters.node
        since, until, limit, cursor = filters.since, filters.until, filters.limit, filters.cursor

        async def page() -> TasksPage:
            return await reader().page(
                state=state,
                handler=handler,
                node_id=node,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )

        read = ("tasks", state, handler, node, since, until, limit, cursor)
        try:
            return await source.answers.json(read, page)
        except InvalidQueryError as error:
            detail_ = str(error)
            raise ProblemError(
                400, detail_ if detail_.startswith("bad request") else f"bad request: {detail_}"
            ) from error
        except RecordUnavailableError as error:
            raise ProblemError(503, str(error), {"Retry-After": "5"}) from error

    @api.get(
        "/api/tasks/{task_id}",
        response_model=TaskDetail,
        tags=["tasks"],
        summary="One task: timeline, demand against use, result preview, placement",
    )
    async def task(task_id: TaskId) -> JsonAnswer:
        async def one() -> TaskDetail:
            return detail(await record_of(task_id), source.explanation(task_id))

        return await source.answers.json(("task", task_id), one)

    @api.post(
        "/api/tasks/{task_id}/cancel",
        response_model=CancelRequested,
        tags=["tasks"],
        status_code=202,
        dependencies=[Depends(guard.act)],
        summary="Ask for a task to be cancelled (needs the API token)",
    )
    async def cancel(task_id: TaskId) -> CancelRequested:
        canceller = source.canceller
        if canceller is None:
            raise ProblemError(501, "cancel is not available on this dashboard")
        record = await record_of(task_id)
        if record.state in TERMINAL_STATES:
            raise ProblemError(409, f"task {task_id} already {record.state}: nothing to cancel")
        try:
            await canceller.cancel([task_id])
        except TimeoutError as error:
            raise ProblemError(503, "the cancel request could not be sent in time") from error
        source.answers.forget(("task", task_id))
        return CancelRequested(task_id=task_id, requested=True, state=record.state)


__all__ = ["MAX_PAGE", "CancelRequested", "TaskFilters", "add_routes"]
