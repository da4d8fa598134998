"""End-aware placement, live: a placement's expected end from its handler's recent run times.

The rule is :mod:`boson_shared.scheduling.horizon`, the same the simulator
places by (``boson/simulation/engine.py``, from known durations): on a table
with GPUs, work expected to run longer than a day goes to the smallest nodes
that fit it and does not take the last of the largest GPU nodes expected to
free within a day. What the scheduler adds is what the simulator knows and it
does not: when work is expected to end. As the balancer's head reservation
does, it learns each handler's run times from the results
(:class:`~boson_shared.scheduling.head_reservation.RunTimes`: a running mean
that follows longer run times fast and shorter ones slowly); before a handler
has reported one, a task's ``timeout_s`` stands in.

A node's horizon (the latest expected end placed on it) only grows while
work runs there, as in the simulator. Live, an estimate can be too long, so a
node the snapshot shows dead, or running nothing with nothing held for it,
has its horizon cleared: nothing placed on it is still expected to end.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

import numpy as np
from numpy.typing import NDArray

from boson_shared.contract.messages import NodeState, TaskResult, TaskSubmitted
from boson_shared.scheduling.head_reservation import RunTimes
from boson_shared.scheduling.horizon import NodeHorizon
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.placement_outcomes import BatchPlacement

Ends = tuple[float, float, float]
"""``(now, expected end, waiting since)``, as :meth:`Placer.place_batch` takes them."""


def run_seconds(result: TaskResult) -> float | None:
    """How long the run a result reports took (``None``: it does not say)."""
    if result.usage is not None:
        return result.usage.wall_s
    if result.started_at is not None:
        return max(result.finished_at - result.started_at, 0.0)
    return None


class LiveEnds:
    """The run-time estimates behind end-aware placement, and the placer's horizon."""

    def __init__(self, placer: Placer, enabled: bool = True) -> None:
        self.placer = placer
        self.run_times = RunTimes()
        """Expected run time per handler, from the run times results report."""
        self.horizon: NodeHorizon | None = NodeHorizon() if enabled else None
        placer.horizon = self.horizon

    def observe(self, result: TaskResult) -> None:
        """A result came back: its run time feeds its handler's estimate."""
        seconds = run_seconds(result)
        if seconds is not None:
            self.run_times.observe(result.handler, seconds)

    def ends(self, task: TaskSubmitted, now: float) -> Ends:
        """``task``'s ends if placed ``now`` (its handler's recent run time, or its timeout)."""
        expected = self.run_times.expected(task.handler, task.timeout_s)
        return now, now + expected, min(task.submitted_at, now)

    def on_snapshot(self, nodes: Sequence[NodeState], held: Collection[str]) -> None:
        """Clear the horizon of each node that is dead, or runs nothing and has nothing
        ``held`` for it (node ids with placements the snapshot does not show yet)."""
        if self.horizon is None:
            return
        table = self.placer.table
        for node in nodes:
            idle = node.running == 0 and node.node_id not in held
            if (not node.alive or idle) and node.node_id in table:
                self.horizon.clear(table.index_of(node.node_id))

    def place_batch(
        self,
        demands: NDArray[np.float64],
        models: Sequence[str | None],
        tasks: Sequence[TaskSubmitted],
        now: float,
    ) -> BatchPlacement:
        """Place ``demands`` (one per task, in order), end-aware where GPUs make it matter.

        Without GPU capacity the rule changes nothing: one plain batch. With
        it, each run of consecutive tasks with the same ends is one batch.
        """
        placer = self.placer
        gpu_models = models if any(models) else None
        if self.horizon is None or not np.any(placer.table.capacity[:, 2] > 0):
            return placer.place_batch(demands, gpu_models)
        ends = [self.ends(task, now) for task in tasks]
        indices: list[NDArray[np.int64]] = []
        node_ids: list[str | None] = []
        masks: list[NDArray[np.int64]] = []
        start = 0
        for key, run in itertools.groupby(ends):
            stop = start + len(list(run))
            part = placer.place_batch(
                demands[start:stop],
                None if gpu_models is None else gpu_models[start:stop],
                ends=key,
            )
            indices.append(part.indices)
            node_ids.extend(part.node_ids)
            masks.append(part.masks if part.masks is not None else np.zeros(stop - start, np.int64))
            start = stop
        if not indices:
            return placer.place_batch(demands, gpu_models)
        return BatchPlacement(np.concatenate(indices), tuple(node_ids), np.concatenate(masks))


__all__ = ["Ends", "LiveEnds", "run_seconds"]
