"""The balancer's dispatcher without a broker: nodes, snapshots and a dispatcher to test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from boson_services.balancer.dispatcher import Dispatcher
from boson_shared.contract.messages import ClusterSnapshot, NodeState, ResourceVector
from tests.support.fakes import Clock

CREDIT_PER_SLOT = 2
"""The window of a node before its results report task times: slots × this."""


@dataclass(frozen=True)
class N:
    """A node as the monitor's snapshot reports it (one capacity on cpu and memory)."""

    node_id: str
    slots: int = 2
    measured: float = 0.2
    alive: bool = True
    capacity: float = 1000.0
    allocated: float = 0.0
    on_probation: bool = False
    running: int = 0
    """Tasks its last heartbeat reported running."""


def snapshot(nodes: Sequence[N], seq: int = 1) -> ClusterSnapshot:
    """The monitor's snapshot of ``nodes``."""
    return ClusterSnapshot(
        monitor_id="m",
        seq=seq,
        nodes=tuple(
            NodeState(
                node_id=n.node_id,
                alive=n.alive,
                on_probation=n.on_probation,
                capacity=ResourceVector(cpu=n.capacity, memory=n.capacity),
                allocated=ResourceVector(cpu=n.allocated, memory=n.allocated),
                slots=n.slots,
                running=n.running,
                free_slots=n.slots,
                measured_cpu=n.measured,
                measured_memory=n.measured,
                last_heartbeat_at=0.0,
            )
            for n in nodes
        ),
    )


def dispatcher(clock: Clock | None = None) -> Dispatcher:
    """A dispatcher with rebalancing off and a seeded generator."""
    return Dispatcher(
        credit_per_slot=CREDIT_PER_SLOT,
        hot_threshold=0.9,
        retarget_after_s=2.0,
        imbalance_threshold=10.0,  # rebalancing off unless a test wants it
        rng=np.random.default_rng(1),
        clock=clock or Clock(),
    )


def demand(units: float = 1.0) -> ResourceVector:
    """``units`` of cpu and memory."""
    return ResourceVector(cpu=units, memory=units)


__all__ = ["CREDIT_PER_SLOT", "N", "demand", "dispatcher", "snapshot"]
