"""A placement's wait for a node: through the gate and the dispatcher, then assigned or parked.

A handler *waits* until the dispatcher gives its task a node, then publishes
the ``TaskAssigned`` itself, at once — not with the rest of its envelope,
whose other items may wait much longer (and whose credit could only come back
once this one runs). The placement stays an unacknowledged delivery while it
is held (a balancer crash hands it back to RabbitMQ); the envelope is acked
when every item in it is dispatched and confirmed by the broker. Work held past
``park_after_s`` is re-published to the placed queue under a fresh message
id, so no delivery outlives the broker's consumer timeout: the service's
periodic sweep calls :meth:`Dispatching.park_overdue`, which wakes those
handlers (no timer per held task).

With tenants, a task waits for its turn in the
:class:`~boson_services.balancer.tenancy.AdmissionGate` before the
dispatcher holds it, and its result frees its tenant's quota.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from boson_services.balancer.admission_ticket import UnknownTenantError
from boson_services.balancer.cancelling import Cancelling
from boson_services.balancer.dispatch_records import (
    HeldTooLongError,
    TaskCancelledHere,
    TaskPreemptedHere,
)
from boson_shared.contract.messages import (
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskSubmitted,
    failed_result,
    new_id,
    task_event,
)
from boson_shared.contract.topology import RK_PARKED, rk_node
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import result_emit
from boson_shared.scheduling.tenants import UNKNOWN_TENANT, unknown_tenant_message

logger = logging.getLogger(__name__)


class Dispatching(Cancelling):
    """A task held until a node takes it, then assigned; parked when held too
    long (cancels: :class:`~boson_services.balancer.cancelling.Cancelling`)."""

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


__all__ = ["Dispatching"]
