"""What the dispatcher keeps per node and per held task, and how a held
task's wait may end other than on a node.

:class:`NodeView` is the balancer's view of one node (the last snapshot,
plus what it dispatched since); :class:`HeldTask`, one task held until a
node takes it, its future resolved with that node. The exceptions are the
other outcomes of that future.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from boson_shared.scheduling.devices import DeviceBook


class HeldTooLongError(Exception):
    """A held task's future fails with this when
    :meth:`~boson_services.balancer.holding.Holding.overdue` says
    it waited too long: its handler parks it."""


class TaskCancelledHere(Exception):  # noqa: N818 - an outcome, not a fault
    """A held task was cancelled before any node took it."""


class TaskPreemptedHere(Exception):  # noqa: N818 - an outcome, not a fault
    """A held task lost its admission before any node took it: it waits in
    its tenant's line again (:mod:`boson_services.balancer.tenancy`)."""


@dataclass
class NodeView:
    node_id: str
    alive: bool
    slots: int
    capacity: np.ndarray
    allocated: np.ndarray
    """As of the last snapshot, plus what we dispatched since, minus what came back."""
    measured: float
    in_flight: set[str] = field(default_factory=set)
    task_s: float | None = None
    """Running mean of the wall time its results report (None: none reported yet)."""
    window: int = 0
    """Tasks it may hold at once (kept current by
    :meth:`~boson_services.balancer.dispatch_state.DispatchState.resize`)."""
    on_probation: bool = False
    """Back after failing (the monitor's ``NodeState.on_probation``): no new work."""
    gpus: DeviceBook = field(default_factory=lambda: DeviceBook([], [], []))
    """Its GPU devices: the last snapshot's, plus what we dispatched since."""
    idle_since: float | None = None
    """Since when its snapshots show it running nothing (None: running something)."""

    @property
    def takes_work(self) -> bool:
        """Alive and not on probation: new work may go here."""
        return self.alive and not self.on_probation


@dataclass
class HeldTask:
    task_id: str
    demand: np.ndarray
    target: str | None
    since: float
    future: asyncio.Future[str]
    job: object = None
    """What the task belongs to, for smallest-pending-job-first (``None``: its own job)."""
    urgent: bool = False
    """A dead node's work: offered capacity before anything else."""
    handler: str | None = None
    """Its handler, whose recent run times say how long it is expected to run."""
    timeout_s: float | None = None
    """The longest it may run: its expected run time before its handler reports any."""
    models: frozenset[str] | None = None
    """The GPU models its devices must be (``None``: any)."""
    prefer: int = 0
    """The devices the scheduler picked on ``target`` (a mask), kept if still free there."""


__all__ = [
    "HeldTask",
    "HeldTooLongError",
    "NodeView",
    "TaskCancelledHere",
    "TaskPreemptedHere",
]
