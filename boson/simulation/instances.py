"""The simulator's units of work: waiting entries, running groups, and the placement step.

:func:`place_instances` is the pure step shared by every path: the same
table state, placer and request give the same placements, which is what lets
a test hold the running scheduler to the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from boson.simulation.table import BatchPlacer, BatchResult, FloatArray, IntArray, fit_counts
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.table import NodeTable

if TYPE_CHECKING:
    from boson.simulation.engine import Simulation


@dataclass
class Pending:
    """Instances of one task waiting in the backlog."""

    task: int
    count: int
    replaced: bool
    since: float


@dataclass
class RunningGroup:
    task: int
    nodes: IntArray
    end: float
    masks: IntArray | None = None
    """Per instance, the GPU devices it holds (``None``: the task has no GPU part)."""


def place_instances(
    placer: BatchPlacer, table: NodeTable, demand: FloatArray, count: int
) -> IntArray:
    """Place up to ``count`` identical instances in one batch; their nodes.

    Asks the placer only for as many as can fit (exact for identical
    instances), so a saturated cluster costs one vectorised count, not a
    batch of refusals. The instances not returned are waiting.
    """
    return place_instances_on_devices(placer, table, demand, count)[0]


def place_instances_on_devices(
    placer: BatchPlacer,
    table: NodeTable,
    demand: FloatArray,
    count: int,
    ends: tuple[float, float, float] | None = None,
) -> tuple[IntArray, IntArray | None]:
    """:func:`place_instances`, with each instance's GPU devices (a bit mask; ``None``: none).

    ``ends``: ``(now, expected end, waiting since)``, for a placer that places end-aware.
    """
    fit = min(count, int(fit_counts(table, demand).sum()))
    if fit == 0:
        return np.zeros(0, np.int64), None
    batch = np.repeat(demand[None, :], fit, axis=0)
    if ends is not None and isinstance(placer, Placer) and placer.horizon is not None:
        result: BatchResult = placer.place_batch(batch, ends=ends)
    else:
        result = placer.place_batch(batch)
    indices = np.asarray(result.indices, np.int64)
    placed = indices >= 0
    masks = getattr(result, "masks", None)
    return indices[placed], None if masks is None else np.asarray(masks, np.int64)[placed]


class BacklogDrainer(Protocol):
    """Offers freed capacity to the backlog (the rebalancing seam)."""

    def observe(self, demand: FloatArray, count: int) -> None:
        """``count`` instances of ``demand`` arrived (the balancer service sees every task)."""

    def drain(self, sim: Simulation) -> None: ...

    def recover(self, sim: Simulation, task: int, count: int) -> None: ...

    def head(self, sim: Simulation) -> Pending | None:
        """The backlog entry first in this drainer's waiting order (``None``: empty)."""


__all__ = [
    "BacklogDrainer",
    "Pending",
    "RunningGroup",
    "place_instances",
    "place_instances_on_devices",
]
