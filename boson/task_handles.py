"""What a user submits and holds: :class:`TaskRequest`, :class:`TaskHandle`, :class:`Plan`.

Re-exported by :mod:`boson.client`, where users import them from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boson.records import DEFAULT_TIMEOUT_S
from boson.steering import CancelOutcome
from boson_shared.contract.messages import (
    PlacementExplanation,
    ResourceRequest,
    ResourceVector,
    TaskProgress,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.errors import TaskCancelledError, TaskFailedError
from boson_shared.scheduling.placement_outcomes import Status
from boson_shared.scheduling.tenants import DEFAULT_PRIORITY, DEFAULT_TENANT

if TYPE_CHECKING:
    from boson.client import Client


@dataclass(frozen=True)
class TaskRequest:
    """One task for :meth:`Client.submit_many`."""

    handler: str
    data: bytes | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    complexity: float | None = None
    data_size: float | None = None
    requests: ResourceRequest | None = None
    timeout_s: float = 300.0
    max_retries: int | None = None
    """None: a handler's exception fails the task at once, and what retrying can
    fix (a node that died, a timeout, a handler raising ``Retry``) is retried
    up to ``DEFAULT_MAX_RETRIES`` times. A number: up to that many retries of
    any failure, the handler's own exceptions included."""
    task_id: str | None = None
    explain: bool = False
    tenant: str = DEFAULT_TENANT
    """The team or account the task counts against (``BOSON_TENANTS_FILE``);
    the scheduler fails a task whose tenant the file does not declare."""
    priority: int = DEFAULT_PRIORITY
    """Within its tenant, higher goes first: an integer from -1000 to 1000."""


@dataclass(frozen=True)
class _Sent:
    """What the client keeps of a task it submitted until its result arrives."""

    task_id: str
    handler: str
    submitted_at: float


@dataclass(frozen=True)
class Plan:
    """What placement would do with a demand on the cluster as last seen."""

    demand: ResourceVector
    node_id: str | None
    status: Status
    explanation: PlacementExplanation


class TaskHandle:
    """A submitted task; await :meth:`result` for its outcome."""

    def __init__(self, client: Client, task: TaskSubmitted) -> None:
        self._client = client
        self.task = task

    @property
    def task_id(self) -> str:
        return self.task.task_id

    async def result(self, timeout: float | None = None) -> TaskResult:
        """The task's result (succeeded or failed); ``TimeoutError`` if none in time."""
        return await self._client.result(self.task_id, timeout=timeout)

    async def output(self, timeout: float | None = None) -> Any:
        """The task's output; raises :class:`TaskFailedError` if it failed
        (:class:`TaskCancelledError` if it was cancelled)."""
        return unwrap(await self.result(timeout))

    async def cancel(self, timeout: float = DEFAULT_TIMEOUT_S) -> CancelOutcome:
        """Cancel the task: ``cancelled`` or ``already-finished`` (see :meth:`Client.cancel`)."""
        outcomes = await self._client.cancel(self.task_id, timeout=timeout)
        return outcomes[self.task_id]

    def progress(self) -> AsyncIterator[TaskProgress]:
        """Its progress reports as they arrive (the latest first), until its result arrives.

        ``async for report in handle.progress(): print(report.fraction, report.message)``
        """
        return self._client.progress(self.task_id)

    def __repr__(self) -> str:
        return f"TaskHandle({self.task_id!r}, handler={self.task.handler!r})"


def unwrap(result: TaskResult) -> Any:
    if result.status == "cancelled":
        raise TaskCancelledError(result.task_id)
    if result.status == "failed":
        assert result.error is not None
        raise TaskFailedError(result.task_id, result.error.error_type, result.error.message)
    return result.output


__all__ = ["Plan", "TaskHandle", "TaskRequest", "unwrap"]
