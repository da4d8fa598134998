"""The balancer's handlers: held placements in, node assignments out.

:class:`BalancerHandlers` takes a placement (or a dead node's leftover)
from its arrival to its assignment, and the events that change what may be
dispatched: results, which give credit back (one pump per envelope),
snapshots, cancels and takeover answers. A redelivered placement whose
task's result went by is dropped; a dead node's leftover whose result went
by has that result sent again, or, no longer kept, runs again. It is built
in layers: :mod:`~boson_services.balancer.handler_state` (what the handlers
keep), :mod:`~boson_services.balancer.cancelling` (cancels),
:mod:`~boson_services.balancer.dispatching` (a placement's wait for a node
through the gate and the dispatcher, and parking) and
:mod:`~boson_services.balancer.taking_over` (the takeover census).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from boson_services.balancer.taking_over import TakingOver
from boson_shared.contract.messages import (
    CancelTask,
    ClusterSnapshot,
    HeldWork,
    HeldWorkBarrier,
    Message,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
    failed_result,
)
from boson_shared.runtime.consumer_spec import Emit, delivery_redelivered
from boson_shared.runtime.results import result_emit

logger = logging.getLogger(__name__)


class BalancerHandlers(TakingOver):
    """Placements and leftovers to assignments; results, snapshots, cancels and
    takeover answers (its layers: see the module docstring)."""

    async def on_placed(self, placed: TaskPlaced) -> Sequence[Emit]:
        if not self.placed_seen:
            self.placed_seen = True
            if self.gate is not None:
                await self._take_over(self.gate)
        if delivery_redelivered.get() and self._already_finished(placed.task.task_id):
            # Dispatched before a restart and run since: its result is out.
            return []
        if placed.task.task_id in self.cancelled:
            return [self._cancelled(placed.task, placed.demand)]
        return await self._dispatch(
            placed.task,
            placed.demand,
            placed.node_id,
            dispatch=placed.dispatched + 1,
            devices=placed.devices,
            preempted=placed.preempted,
        )

    async def on_orphan(self, assigned: TaskAssigned | HeldWorkBarrier) -> Sequence[Emit]:
        """Work from a dead node's queue: place it again on a live node. (A
        census barrier there is the dead executor's: nobody answers it.)

        A finished task's result went by here, but not necessarily to its
        client: a fan-out publish the broker nacked (the client's reply
        queue electing a leader) or lost with its connection can reach some
        queues only, and the node hands the assignment back to publish again.
        So the result seen is sent again (the client shows a task once); one
        no longer kept runs again.
        """
        if isinstance(assigned, HeldWorkBarrier):
            return []
        task_id = assigned.task.task_id
        if task_id in self.finished:
            kept = self.kept_results.get(task_id)
            if kept is not None:
                self.replayed_total += 1
                logger.info("task %s already finished; its result is sent again", task_id)
                return [result_emit(self.names, kept)]
        if assigned.task.task_id in self.cancelled:
            return [self._cancelled(assigned.task, assigned.demand)]
        self.recovered_total += 1
        return await self._dispatch(
            assigned.task,
            assigned.demand,
            None,
            dispatch=assigned.dispatch + 1,
            preempted=assigned.preempted,
        )

    def _already_finished(self, task_id: str) -> bool:
        """Whether the task's result went by: its redelivered placement is a leftover.

        Only a redelivered placement is checked: its assignment went to a
        node, which answers it (a dead node's, from its queue: ``on_orphan``).
        A client that submits a finished task id again still gets the
        executor's replay.
        """
        if task_id not in self.finished:
            return False
        self.skipped_finished += 1
        logger.info("task %s already finished; its leftover copy is dropped", task_id)
        return True

    async def on_placed_exhausted(
        self, placed: TaskPlaced, error: BaseException, attempts: int
    ) -> Sequence[Emit]:
        """A placement the balancer gives up on: the client learns it failed."""
        return self._give_up(placed.task, placed.demand, error, attempts)

    async def on_orphan_exhausted(
        self, assigned: TaskAssigned | HeldWorkBarrier, error: BaseException, attempts: int
    ) -> Sequence[Emit]:
        assert isinstance(assigned, TaskAssigned)  # a barrier is dropped, never fails
        return self._give_up(assigned.task, assigned.demand, error, attempts)

    def _give_up(
        self, task: TaskSubmitted, demand: ResourceVector, error: BaseException, attempts: int
    ) -> list[Emit]:
        self.dispatcher.release(task.task_id)
        if self.gate is not None:
            self.gate.left(task.task_id)
        result = failed_result(
            task, type(error).__name__, str(error), attempts=attempts, demand=demand
        )
        return [result_emit(self.names, result)]

    async def on_events(self, messages: Sequence[Message]) -> Sequence[Emit]:
        """An envelope of events: its results free credit first, then one pump.

        A pump per result would order the flexible queue's whole window once
        per freed slot; one pump per envelope orders it once for them all.
        """
        freed = False
        for message in messages:
            if isinstance(message, TaskResult):
                freed |= self._result_came_back(message, pump=False)
        self.dispatcher.pump()
        if freed and self.gate is not None:
            self.gate.request_pass()
        emits: list[Emit] = []
        for message in messages:
            if not isinstance(message, TaskResult):
                emits.extend(await self.on_event(message))
        return emits

    async def on_event(self, message: Message) -> Sequence[Emit]:
        if isinstance(message, TaskResult):
            if self._result_came_back(message, pump=True) and self.gate is not None:
                self.gate.request_pass()
        elif isinstance(message, ClusterSnapshot):
            went_down = self.dispatcher.on_snapshot(message)
            if self.gate is not None:
                self.gate.set_pool()
            if went_down and self.on_nodes_down is not None:
                await self.on_nodes_down(went_down)
        elif isinstance(message, CancelTask):
            return self.on_cancel(message)
        elif isinstance(message, HeldWork):
            self.on_held_work(message)
        return []

    def _result_came_back(self, result: TaskResult, *, pump: bool) -> bool:
        """The task is done: remember it, give its node the credit and resources
        back, and its tenant the quota; whether admission has room anew."""
        wall_s = result.usage.wall_s if result.usage is not None else None
        self.finished.add(result.task_id)
        self.kept_results.add(result)
        self.dispatcher.complete(result.task_id, wall_s, pump=pump)
        return self.gate is not None and self.gate.finished(result.task_id)


__all__ = ["BalancerHandlers"]
