"""A simulated compute node: real heartbeats and a real node queue, no real work.

``boson demo`` uses five of them to replay the worked placement example of
docs/design.md#placement (nodes whose heartbeats report a given allocation),
and the integration tests use them to drive the control plane at a pace they
choose. Each one speaks the same protocol as an executor: it heartbeats on
the events exchange, consumes its node queue, and answers every assignment
with a ``TaskResult``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import NodeHeartbeat, ResourceVector, TaskAssigned, TaskResult
from boson_shared.contract.topology import Topology, rk_heartbeat
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.results import result_emit
from boson_shared.runtime.service import Periodic, Service
from boson_shared.settings import BosonSettings


class SimulatedNode(Service):
    """A node that holds each assigned task for ``hold_s`` seconds, then succeeds."""

    name = "simnode"

    def __init__(
        self,
        settings: BosonSettings,
        transport: Transport,
        codec: Codec,
        *,
        node_id: str,
        capacity: ResourceVector,
        allocated: ResourceVector,
        slots: int = 2,
        measured: float = 0.2,
        hold_s: float = 0.0,
        heartbeat_interval_s: float = 0.25,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__(settings, transport, codec)
        self.node_id = node_id
        self.capacity = capacity
        self.base_allocated = allocated
        self.slots = slots
        self.measured = measured
        self.hold_s = hold_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.prefetch_factor = prefetch_factor
        self.started_at = time.time()
        self.seq = 0
        self.heartbeating = True
        self.received: list[TaskAssigned] = []
        self.held = 0
        self.max_held = 0
        self.running = 0
        self._slots = asyncio.Semaphore(slots)

    def topology(self) -> Topology:
        return self.names.node(self.node_id, expires_ms=3_600_000)

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return [
            ConsumerSpec(
                queue=self.names.node_queue(self.node_id),
                accepts=(TaskAssigned,),
                handler=self.on_assigned,
                prefetch=self.slots * self.prefetch_factor,
            )
        ]

    def background(self) -> Sequence[tuple[float, Periodic]]:
        return [(self.heartbeat_interval_s, self.heartbeat)]

    async def heartbeat(self) -> None:
        if not self.heartbeating:
            return
        self.seq += 1
        beat = NodeHeartbeat(
            node_id=self.node_id,
            seq=self.seq,
            started_at=self.started_at,
            capacity=self.capacity,
            allocated=self.base_allocated,
            slots=self.slots,
            running=self.running,
            free_slots=max(0, self.slots - self.held),
            measured_cpu=self.measured,
            measured_memory=self.measured,
        )
        await self.publisher.publish(
            Route(self.names.events_exchange, rk_heartbeat(self.node_id)), beat
        )

    async def on_assigned(self, assigned: TaskAssigned) -> Sequence[Emit]:
        self.received.append(assigned)
        self.held += 1
        self.max_held = max(self.max_held, self.held)
        try:
            async with self._slots:
                self.running += 1
                try:
                    if self.hold_s > 0:
                        await asyncio.sleep(self.hold_s)
                finally:
                    self.running -= 1
        finally:
            self.held -= 1
        task = assigned.task
        result = TaskResult(
            message_id=f"{task.task_id}.result",
            task_id=task.task_id,
            handler=task.handler,
            status="succeeded",
            output={"node": self.node_id},
            node_id=self.node_id,
            demand=assigned.demand,
            complexity=task.complexity,
            data_size=task.data_size,
            reply_to=task.reply_to,
            submitted_at=task.submitted_at,
        )
        return [result_emit(self.names, result)]


__all__ = ["SimulatedNode"]
