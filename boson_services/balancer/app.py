"""Wiring of the balancer: the placed queue (single active consumer), its
event queue, and a drain consumer for each node declared down. With a
tenants file it holds the admission gate: it reclaims quota on a short
tick, sending ``preempted`` cancels to the nodes that run the victims, and
reports how the tenants share the pool (``tenants.report``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.handlers import BalancerHandlers
from boson_services.balancer.settings import BalancerSettings
from boson_services.balancer.tenancy import AdmissionGate, Preemption
from boson_services.balancer.tenants_view import tenants_report
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import (
    MAX_CANCEL_IDS,
    BalancerBacklog,
    CancelTask,
    ClusterSnapshot,
    HeldWork,
    HeldWorkBarrier,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
)
from boson_shared.contract.topology import (
    RK_ALL_RESULTS,
    RK_BACKLOG,
    RK_CANCEL,
    RK_SNAPSHOT,
    RK_TENANTS,
    Topology,
    rk_held_work,
)
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.service import Periodic, Service

MISSED_RESULT_MARGIN_S = 30.0
"""Beyond the retry policy's delays added up, how long a node must look idle before the
credit of results this balancer missed there comes back (heartbeat and
snapshot lag, with room to spare)."""

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.5
"""How often held and waiting work past its age is parked."""
RECLAIM_INTERVAL_S = 0.25
"""How often a claim's grace is checked (it costs one comparison when none is due)."""


class BalancerService(Service):
    name = "balancer"

    def __init__(self, settings: BalancerSettings, transport: Transport, codec: Codec) -> None:
        super().__init__(settings, transport, codec)
        self.balancer_settings = settings
        self.dispatcher = Dispatcher(
            credit_per_slot=settings.credit_per_slot,
            max_credit_per_slot=settings.max_credit_per_slot,
            queue_budget_s=settings.queue_budget_s,
            hot_threshold=settings.hot_threshold,
            retarget_after_s=settings.retarget_after_s,
            imbalance_threshold=settings.imbalance_threshold,
            reservation_lapse_s=settings.reservation_lapse_s,
            missed_result_after_s=settings.names().retry.total_delay_ms() / 1000
            + MISSED_RESULT_MARGIN_S,
        )
        # No tenants file: no gate, and dispatch costs what it always has.
        self.gate = (
            AdmissionGate(settings.tenants(), self.dispatcher, grace_s=settings.preempt_grace_s)
            if settings.tenants_file is not None
            else None
        )
        self.tenants_seq = 0
        self.handlers = BalancerHandlers(
            self.dispatcher,
            self.names,
            self.publisher.publish,
            park_after_s=settings.park_after_s,
            on_nodes_down=self.drain_nodes,
            finished_capacity=settings.dedup_capacity,
            record=settings.record,
            record_linger_s=settings.record_linger_ms / 1000,
            gate=self.gate,
            instance_id=settings.instance_id,
        )
        self.events_queue = self.names.subscriber_queue(self.name, settings.instance_id)
        self.draining: dict[str, ConsumeLoop[Any]] = {}

    def topology(self) -> Topology:
        expires_ms = int(self.balancer_settings.subscriber_expires_s * 1000)
        topology = self.names.placed() + self.names.subscriber(
            self.name,
            self.settings.instance_id,
            [RK_SNAPSHOT, RK_ALL_RESULTS, RK_CANCEL, rk_held_work(self.settings.instance_id)],
            expires_ms,
        )
        return topology + self.names.record() if self.settings.record else topology

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return [
            ConsumerSpec(
                queue=self.events_queue,
                accepts=(ClusterSnapshot, TaskResult, CancelTask, HeldWork),
                handler=self.handlers.on_event,
                batch_handler=self.handlers.on_events,
                prefetch=self.settings.prefetch,
                items_in_turn=True,
                # Every copy of a result returns credit: after a broker restart
                # a task can be dispatched twice, and the executor replays the
                # same result (same message id) for the second dispatch.
                # Completing is idempotent, and so is applying a snapshot.
                dedup=False,
            ),
            ConsumerSpec(
                queue=self.names.placed_queue,
                accepts=(TaskPlaced,),
                handler=self.handlers.on_placed,
                on_exhausted=self.handlers.on_placed_exhausted,
                prefetch=self.balancer_settings.max_held,
            ),
        ]

    def background(self) -> Sequence[tuple[float, Periodic]]:
        tasks: list[tuple[float, Periodic]] = [
            (SWEEP_INTERVAL_S, self.sweep),
            (self.balancer_settings.report_interval_s, self.report),
            (self.balancer_settings.tenants_report_interval_s, self.report_tenants),
        ]
        if self.gate is not None:
            tasks.append((RECLAIM_INTERVAL_S, self.reclaim))
        return tasks

    async def sweep(self) -> None:
        self.dispatcher.sweep()
        self.handlers.park_overdue()
        # A drained node that heartbeats again gets its queue back.
        for node_id in list(self.draining):
            node = self.dispatcher.nodes.get(node_id)
            if node is not None and node.alive:
                loop = self.draining.pop(node_id)
                logger.info("node %s is back; no longer draining its queue", node_id)
                await self.remove_consumer(loop)

    async def report(self) -> None:
        backlog = BalancerBacklog(pending=self.dispatcher.pending(), held=len(self.dispatcher.held))
        await self.publisher.publish(Route(self.names.events_exchange, RK_BACKLOG), backlog)

    async def reclaim(self) -> None:
        """Preempt borrowed work for claims past their grace period."""
        assert self.gate is not None
        census = self.gate.census
        if census is not None and not census.ended and census.done(self.gate.clock()):
            self.gate.admit()  # taking over: the executors' time to answer is up
        preemptions = self.gate.reclaim()
        for preemption in preemptions:
            await self.preempt(preemption)
        if preemptions:
            await self.report_tenants()

    async def preempt(self, preemption: Preemption) -> None:
        """Tell the executor of one node to stop these tasks and hand them back."""
        ids = preemption.task_ids
        logger.info("preempting %d task(s) on %s", len(ids), preemption.node_id)
        for start in range(0, len(ids), MAX_CANCEL_IDS):
            command = CancelTask(
                task_ids=ids[start : start + MAX_CANCEL_IDS],
                reply_to=self.settings.instance_id,
                reason="preempted",
                node_id=preemption.node_id,
            )
            await self.publisher.publish(Route(self.names.events_exchange, RK_CANCEL), command)

    async def report_tenants(self) -> None:
        """Publish how the tenants share the pool — only once this instance is
        the active consumer of placed work (a standby knows nothing of it)."""
        if not self.handlers.placed_seen:
            return
        self.tenants_seq += 1
        report = tenants_report(
            self.gate,
            self.dispatcher,
            balancer_id=self.settings.instance_id,
            seq=self.tenants_seq,
            grace_s=self.balancer_settings.preempt_grace_s,
        )
        await self.publisher.publish(Route(self.names.events_exchange, RK_TENANTS), report)

    async def drain_nodes(self, node_ids: list[str]) -> None:
        """Consume dead nodes' queues so their work is placed on live nodes."""
        for node_id in node_ids:
            if node_id in self.draining:
                continue
            logger.warning("node %s is down; re-dispatching its queued work", node_id)
            spec = ConsumerSpec[TaskAssigned | HeldWorkBarrier](
                queue=self.names.node_queue(node_id),
                accepts=(TaskAssigned, HeldWorkBarrier),
                handler=self.handlers.on_orphan,
                on_exhausted=self.handlers.on_orphan_exhausted,
                prefetch=self.balancer_settings.max_held,
            )
            try:
                self.draining[node_id] = await self.add_consumer(spec)
            except Exception as error:  # the queue may have expired already: nothing to move
                logger.warning("cannot drain %s: %s", spec.queue, error)

    def health(self) -> dict[str, Any]:
        body = super().health()
        body.update(
            held=len(self.dispatcher.held),
            pending=self.dispatcher.pending(),
            dispatched=self.dispatcher.dispatched_total,
            # Held work sent elsewhere than its placed node: by spare credit
            # at once (stolen), or after the sweep / a rebalance (retargeted).
            stolen=self.dispatcher.stolen_total,
            retargeted=self.dispatcher.retargeted_total,
            recovered=self.handlers.recovered_total,
            skipped_finished=self.handlers.skipped_finished,
            # Leftovers of a dead node's queue answered with the result seen.
            replayed=self.handlers.replayed_total,
            cancelled=self.handlers.cancelled_total,
            tenants=self._tenants_health(),
            # Tasks found running when this instance took over admission.
            adopted=self.gate.adopted_total if self.gate is not None else 0,
            draining=sorted(self.draining),
            # Per node: how many tasks it may hold, and holds (its credit is the gap).
            nodes={
                node_id: {"window": node.window, "in_flight": len(node.in_flight)}
                for node_id, node in self.dispatcher.nodes.items()
            },
        )
        return body

    def _tenants_health(self) -> dict[str, Any] | None:
        if self.gate is None:
            return None
        return {
            name: {"waiting": waiting, "running": running, "preempted": self.gate.preempted[name]}
            for name, waiting, running in self.gate.counts()
        }


def create(settings: BalancerSettings, transport: Transport, codec: Codec) -> BalancerService:
    return BalancerService(settings, transport, codec)


__all__ = ["RECLAIM_INTERVAL_S", "SWEEP_INTERVAL_S", "BalancerService", "create"]
