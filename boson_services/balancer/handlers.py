"""The balancer's handlers: held placements in, node assignments out.

A handler *waits* until the dispatcher gives its task a node, then publishes
the ``TaskAssigned`` itself, at once — not with the rest of its envelope,
whose other items may wait much longer (and whose credit could only come back
once this one runs). The placement stays an unacknowledged delivery while it
is held (a balancer crash hands it back to RabbitMQ); the envelope is acked
when every item in it is dispatched and confirmed by the broker. Work held past
``park_after_s`` is re-published to the placed queue under a fresh message
id, so no delivery outlives the broker's consumer timeout: the service's
periodic sweep calls :meth:`BalancerHandlers.park_overdue`, which wakes those
handlers (no timer per held task).

A :class:`CancelTask` releases the tasks it names that are held here (their
handlers report them ``cancelled``) and is remembered, bounded, so a
cancelled task that arrives later — still at the scheduler or in the placed
queue — is dropped as cancelled instead of dispatched. A task already
dispatched is its executor's to stop. A ``preempted`` cancel is the
balancer's own command to an executor and changes nothing here.

With tenants, a task waits for its turn in the
:class:`~boson_services.balancer.tenancy.AdmissionGate` before the
dispatcher holds it, and its result frees its tenant's quota.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from boson_services.balancer.admission_ticket import UnknownTenantError
from boson_services.balancer.dispatch_records import (
    HeldTooLongError,
    TaskCancelledHere,
    TaskPreemptedHere,
)
from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.takeover import CENSUS_WAIT_S, Census
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.messages import (
    CancelTask,
    CancelVerdict,
    ClusterSnapshot,
    HeldWork,
    HeldWorkBarrier,
    HeldWorkRequest,
    Message,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
    cancelled_result,
    failed_result,
    new_id,
    task_event,
)
from boson_shared.contract.topology import (
    RK_HELD_REQUEST,
    RK_PARKED,
    RK_RECORD_EVENT,
    Names,
    rk_node,
)
from boson_shared.runtime.cancels import cancel_answers
from boson_shared.runtime.consumer import Emit, delivery_redelivered
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import RecentResults, result_emit
from boson_shared.scheduling.tenants import UNKNOWN_TENANT, unknown_tenant_message

logger = logging.getLogger(__name__)

RESULTS_KEPT = 1024
"""Results kept to send again for a dead node's leftovers (see ``on_orphan``); an
older leftover runs again. Each result holds at most an executor's inline output."""

NodesChanged = Callable[[list[str]], Awaitable[None]]
Publish = Callable[[Route, Message], Awaitable[None]]


class BalancerHandlers:
    def __init__(
        self,
        dispatcher: Dispatcher,
        names: Names,
        publish: Publish,
        *,
        park_after_s: float,
        on_nodes_down: NodesChanged | None = None,
        finished_capacity: int = 100_000,
        record: bool = False,
        record_linger_s: float = 0.0,
        gate: AdmissionGate | None = None,
        instance_id: str = "balancer",
    ) -> None:
        self.dispatcher = dispatcher
        self.gate = gate
        self.instance_id = instance_id
        """Admission across tenants (None: no tenants file, no gate)."""
        self.names = names
        self.publish = publish
        self.park_after_s = park_after_s
        self.on_nodes_down = on_nodes_down
        self.parked_total = 0
        self.placed_seen = False
        """A placement reached this instance: it is (or was) the active consumer."""
        self.recovered_total = 0
        self.finished = SeenIds(finished_capacity)
        """Task ids whose result went by (bounded), to tell leftovers from work."""
        self.skipped_finished = 0
        self.kept_results = RecentResults(RESULTS_KEPT)
        """The latest results that went by, for a leftover whose result may
        not have reached its client (see ``on_orphan``)."""
        self.replayed_total = 0
        self.cancelled = SeenIds(finished_capacity)
        """Task ids a cancel named (bounded): such a task is never dispatched."""
        self.cancelled_total = 0
        self.record = record
        """Report assignments to the task record."""
        self.record_route = Route(names.events_exchange, RK_RECORD_EVENT, linger_s=record_linger_s)

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

    async def _take_over(self, gate: AdmissionGate) -> None:
        """The first placement: this instance is the active one now. Ask the
        executors what they hold before admitting
        (:mod:`boson_services.balancer.takeover`)."""
        request = HeldWorkRequest(reply_to=self.instance_id)
        alive = {node_id for node_id, node in self.dispatcher.nodes.items() if node.alive}
        gate.census = Census(request.message_id, gate.clock() + CENSUS_WAIT_S, awaiting=alive)
        logger.info("taking over admission: asking %d node(s) what they hold", len(alive))
        await self.publish(Route(self.names.events_exchange, RK_HELD_REQUEST), request)

    def on_held_work(self, work: HeldWork) -> None:
        """An executor's answer: charge its tasks to their tenants, then admit.
        Only its complete answer (the one its node queue's barrier brought,
        which names the work that queued there too) ends the wait for it."""
        gate = self.gate
        census = gate.census if gate is not None else None
        if gate is None or census is None or work.request_id != census.request_id:
            return
        # A result that came back first ended its task: it holds nothing now.
        tasks = [task for task in work.tasks if task.task_id not in self.finished]
        adopted = gate.adopt(work.node_id, tasks)
        if adopted:
            logger.info("node %s runs %d task(s) admitted before", work.node_id, adopted)
        if work.complete:
            census.answer(work.node_id)
        gate.request_pass()

    def on_cancel(self, cancel: CancelTask) -> list[Emit]:
        """Release the named tasks held here; remember every id; answer for those it knew."""
        if cancel.reason == "preempted":
            return []  # an executor's to act on; the task comes back to us
        return cancel_answers(cancel, self._cancel_one, self.names, source="balancer")

    def _cancel_one(self, task_id: str) -> CancelVerdict | None:
        known = task_id in self.cancelled
        if task_id in self.finished:
            return "cancelled" if known else "finished"
        if not known:
            self.cancelled.add(task_id)
        if self.dispatcher.cancel(task_id):
            return "cancelled"
        if self.gate is not None and self.gate.cancel(task_id):
            return "cancelled"
        # Dispatched (its executor answers) or not here yet (it will be dropped).
        return None

    def _cancelled(self, task: TaskSubmitted, demand: ResourceVector) -> Emit:
        self.cancelled_total += 1
        logger.info("task %s cancelled before dispatch", task.task_id)
        return result_emit(self.names, cancelled_result(task, attempts=0, demand=demand))

    def _result_came_back(self, result: TaskResult, *, pump: bool) -> bool:
        """The task is done: remember it, give its node the credit and resources
        back, and its tenant the quota; whether admission has room anew."""
        wall_s = result.usage.wall_s if result.usage is not None else None
        self.finished.add(result.task_id)
        self.kept_results.add(result)
        self.dispatcher.complete(result.task_id, wall_s, pump=pump)
        return self.gate is not None and self.gate.finished(result.task_id)

    async def _dispatch(
        self,
        task: TaskSubmitted,
        demand: ResourceVector,
        target: str | None,
        *,
        dispatch: int,
        devices: Sequence[int] = (),
        preempted: int = 0,
    ) -> Sequence[Emit]:
        def hold(future: asyncio.Future[str] | None = None) -> asyncio.Future[str]:
            # A client's submissions form its job (smallest pending job first);
            # a dispatch past the first is a dead node's (or preempted) work,
            # offered capacity first. Its GPU devices are picked again wherever
            # it goes (the scheduler's pick stands where it is still free on
            # its placed node).
            return self.dispatcher.hold(
                task.task_id,
                demand,
                target,
                job=task.reply_to,
                urgent=dispatch > 1,
                handler=task.handler,
                timeout_s=task.timeout_s,
                gpu_model=task.requests.gpu_model if task.requests else None,
                devices=devices,
                future=future,
            )

        # Work that ran before goes back to the front of its tenant's line.
        front = dispatch > 1
        future: asyncio.Future[str] | None = None
        try:
            while True:
                try:
                    if self.gate is None:
                        future = hold()
                    else:
                        # One future from its tenant's line to its node: the
                        # gate hands it to the dispatcher when it admits the task.
                        future = self.gate.enter(task, demand, hold, front=front)
                    # No wait_for: a timer per held task is costly when thousands
                    # are held. The periodic sweep (park_overdue) fails the futures
                    # of work held past park_after_s instead. (Cancelling us
                    # while held cancels the future too: the pumps skip it.)
                    node_id = await future
                    break
                except TaskPreemptedHere:
                    front = True  # its admission was taken back: it waits in line again
        except HeldTooLongError:
            self._leave(task.task_id)
            park = self._park(task, demand, target, dispatch=dispatch - 1, preempted=preempted)
            await self.publish(park.route, park.message)
            return []
        except TaskCancelledHere:
            self._leave(task.task_id)
            return [self._cancelled(task, demand)]
        except UnknownTenantError as error:
            assert self.gate is not None  # only the gate refuses a tenant
            message = unknown_tenant_message(error.tenant, self.gate.admission.names)
            logger.warning("task %s refused: %s", task.task_id, message)
            result = failed_result(task, UNKNOWN_TENANT, message, attempts=0, demand=demand)
            return [result_emit(self.names, result)]
        except asyncio.CancelledError:
            if future is None or not (
                future.done() and not future.cancelled() and future.exception() is None
            ):
                # Draining: the delivery is nacked, the task no longer held.
                self.dispatcher.release(task.task_id)
                self._leave(task.task_id)
                raise
            # Given a node just as we were cancelled: the node's credit is spent
            # on this task, so finish the assignment rather than hand it back.
            node_id = future.result()
        assigned = TaskAssigned(
            message_id=f"{task.task_id}.a{dispatch}",
            task=task,
            demand=demand,
            node_id=node_id,
            dispatch=dispatch,
            devices=self.dispatcher.devices_of(task.task_id),
            preempted=preempted,
        )
        try:
            await self.publish(
                Route(self.names.work_exchange, rk_node(node_id), mandatory=True), assigned
            )
        except BaseException:
            # Not sent: the node never gets it, so it must not hold its credit.
            self.dispatcher.complete(task.task_id)
            raise
        if not self.record:
            return []
        event = task_event(
            task,
            "assigned",
            "balancer",
            message_id=f"{assigned.message_id}.ev",
            at=assigned.assigned_at,
            node_id=node_id,
            dispatch=dispatch,
        )
        return [Emit(self.record_route, event)]

    def _leave(self, task_id: str) -> None:
        if self.gate is not None:
            self.gate.left(task_id)

    def park_overdue(self) -> int:
        """Hand work held (or waiting for admission) past ``park_after_s`` to its
        handler for parking (the service's sweep calls this); how many."""
        parked = self.dispatcher.overdue(self.park_after_s)
        if self.gate is not None:
            parked += self.gate.overdue(self.park_after_s)
        return parked

    def _park(
        self,
        task: TaskSubmitted,
        demand: ResourceVector,
        target: str | None,
        *,
        dispatch: int,
        preempted: int,
    ) -> Emit:
        self.parked_total += 1
        logger.info("parking task %s after %.0fs held", task.task_id, self.park_after_s)
        placed = TaskPlaced(
            message_id=new_id(),  # a new id: the repeat must not look like a duplicate
            task=task,
            demand=demand,
            node_id=target,
            strategy="parked",
            dispatched=dispatch,
            preempted=preempted,
        )
        return Emit(Route(self.names.work_exchange, RK_PARKED, mandatory=True), placed)


__all__ = ["UNKNOWN_TENANT", "BalancerHandlers"]
