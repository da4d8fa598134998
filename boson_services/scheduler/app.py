"""Wiring of the scheduler service: the submit queue and its event queue."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from boson_services.scheduler.handlers import SchedulerHandlers
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import ClusterSnapshot, TaskResult, TaskSubmitted
from boson_shared.contract.topology import RK_ALL_RESULTS, RK_SNAPSHOT, Topology
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.service import Service
from boson_shared.scheduling.demand import demand_model_from_name
from boson_shared.scheduling.kernels import ready_kernels

logger = logging.getLogger(__name__)

_SLOW_KERNELS_S = 1.0
"""Loading the kernels from numba's cache takes less; compiling them, seconds."""


class SchedulerService(Service):
    name = "scheduler"

    def __init__(self, settings: SchedulerSettings, transport: Transport, codec: Codec) -> None:
        super().__init__(settings, transport, codec)
        self.scheduler_settings = settings
        self.handlers = SchedulerHandlers(
            names=self.names,
            strategy=settings.strategy,
            demand_model=demand_model_from_name(settings.demand_model),
            reservation_ttl_s=settings.reservation_ttl_s,
            ingress_max_age_s=settings.ingress_max_age_s,
            record=settings.record,
            record_linger_s=settings.record_linger_ms / 1000,
            # The balancer reads the same file: what one admits the other knows.
            tenants=settings.tenants().names,
            end_aware=settings.end_aware,
        )
        self.events_queue = self.names.subscriber_queue(self.name, settings.instance_id)

    def topology(self) -> Topology:
        expires_ms = int(self.scheduler_settings.subscriber_expires_s * 1000)
        topology = (
            self.names.submit()
            + self.names.placed()
            + self.names.subscriber(
                self.name, self.settings.instance_id, [RK_SNAPSHOT, RK_ALL_RESULTS], expires_ms
            )
        )
        return topology + self.names.record() if self.settings.record else topology

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return [
            ConsumerSpec(
                queue=self.events_queue,
                accepts=(ClusterSnapshot, TaskResult),
                handler=self.handlers.handle_event,
                prefetch=self.settings.prefetch,
                items_in_turn=True,
            ),
            ConsumerSpec(
                queue=self.names.submit_queue,
                accepts=(TaskSubmitted,),
                handler=self.handlers.on_submitted,
                batch_handler=self.handlers.on_submitted_batch,
                on_exhausted=self.handlers.on_exhausted,
                prefetch=self.settings.prefetch,
            ),
        ]

    def health(self) -> dict[str, Any]:
        body = super().health()
        body.update(
            strategy=self.handlers.strategy,
            nodes_known=len(self.handlers.table),
            reservations=len(self.handlers.reservations),
            placed=self.handlers.placed_total,
        )
        return body


def create(settings: SchedulerSettings, transport: Transport, codec: Codec) -> SchedulerService:
    """The scheduler of a process of its own, its placement kernels ready.

    Called before the process's event loop runs (``boson_shared/runtime/main.py``),
    so the kernels load (or, on a fresh install, compile) before the service
    connects, and it takes no work before they are ready.
    """
    started = time.monotonic()
    ready_kernels(settings.strategy)
    took = time.monotonic() - started
    if took > _SLOW_KERNELS_S:
        logger.info("placement kernels ready in %.1fs (a first run compiles them)", took)
    return SchedulerService(settings, transport, codec)


__all__ = ["SchedulerService", "create"]
