"""The knobs the pipeline's throughput rests on, without a broker.

* The balancer's credit window: ``slots × credit_per_slot`` until results
  report task times, then wide for short tasks (up to
  ``max_credit_per_slot``), and narrow again as soon as tasks are long.
* A service's publisher keeps one envelope per lane in flight by default
  (``batch_max_in_flight``): what arrives meanwhile leaves in one envelope.
"""

from __future__ import annotations

import asyncio

import numpy as np

from services.balancer.dispatcher import Dispatcher
from services.scheduler.app import SchedulerService
from services.scheduler.settings import SchedulerSettings
from shared.contract.codec import EnvelopeCodec
from shared.contract.keyring import Keyring
from shared.contract.messages import Alert, ClusterSnapshot, NodeState, ResourceVector
from shared.runtime.publisher import Route
from tests.unit.test_publisher import GatedTransport

SLOTS = 2


def snapshot(*node_ids: str) -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="m",
        seq=1,
        nodes=tuple(
            NodeState(
                node_id=node_id,
                alive=True,
                capacity=ResourceVector(cpu=1e6, memory=1e6),
                allocated=ResourceVector(),
                slots=SLOTS,
                running=0,
                free_slots=SLOTS,
                measured_cpu=0.1,
                measured_memory=0.1,
                last_heartbeat_at=0.0,
            )
            for node_id in node_ids
        ),
    )


def dispatcher(max_credit_per_slot: int | None = 64) -> Dispatcher:
    d = Dispatcher(
        credit_per_slot=2,
        max_credit_per_slot=max_credit_per_slot,
        queue_budget_s=0.05,
        hot_threshold=0.9,
        retarget_after_s=60.0,
        imbalance_threshold=10.0,
        rng=np.random.default_rng(0),
    )
    d.on_snapshot(snapshot("a"))
    return d


def demand() -> ResourceVector:
    return ResourceVector(cpu=1.0, memory=1.0)


def run(d: Dispatcher, count: int, wall_s: float, start: int = 0) -> None:
    """Dispatch and complete ``count`` tasks that each report ``wall_s``."""
    for i in range(start, start + count):
        future = d.hold(f"t{i}", demand(), "a")
        assert future.done()
        d.complete(f"t{i}", wall_s)


async def test_the_window_starts_at_slots_times_credit_per_slot() -> None:
    d = dispatcher()
    futures = [d.hold(f"t{i}", demand(), "a") for i in range(20)]
    assert sum(f.done() for f in futures) == SLOTS * 2
    assert d.credit("a") == 0


async def test_short_tasks_widen_the_window_up_to_the_maximum() -> None:
    d = dispatcher()
    run(d, 1, wall_s=0.00001)
    assert d.nodes["a"].window == SLOTS * 64
    futures = [d.hold(f"x{i}", demand(), "a") for i in range(500)]
    assert sum(f.done() for f in futures) == SLOTS * 64  # never past the window
    assert d.credit("a") == 0


async def test_the_window_holds_about_the_queue_budget_of_work() -> None:
    d = dispatcher()
    run(d, 1, wall_s=0.005)  # 5 ms tasks: 50 ms of work is 10 per slot
    assert d.nodes["a"].window == SLOTS * 10
    run(d, 1, wall_s=2.0, start=1)  # long tasks: back to the floor at once
    assert d.nodes["a"].window == SLOTS * 2


async def test_a_long_task_shrinks_the_window_fast_and_short_ones_widen_it_slowly() -> None:
    d = dispatcher()
    run(d, 1, wall_s=0.0001)
    assert d.nodes["a"].window == SLOTS * 64
    run(d, 1, wall_s=1.0, start=1)
    assert d.nodes["a"].window == SLOTS * 2
    run(d, 5, wall_s=0.0001, start=2)
    assert d.nodes["a"].window == SLOTS * 2  # still wary after a few short ones
    run(d, 100, wall_s=0.0001, start=7)
    assert d.nodes["a"].window == SLOTS * 64


async def test_credit_never_goes_negative_when_the_window_shrinks_under_work_out() -> None:
    d = dispatcher()
    run(d, 1, wall_s=0.0001)
    futures = [d.hold(f"x{i}", demand(), "a") for i in range(SLOTS * 64)]
    assert all(f.done() for f in futures)
    d.complete("x0", 5.0)  # the window falls below what is still out
    assert d.credit("a") == 0
    later = d.hold("y", demand(), "a")
    assert not later.done()


async def test_without_a_maximum_the_window_stays_fixed() -> None:
    d = dispatcher(max_credit_per_slot=None)
    run(d, 10, wall_s=0.00001)
    assert d.nodes["a"].window == SLOTS * 2


async def test_a_services_publisher_keeps_one_envelope_in_flight_per_lane() -> None:
    codec = EnvelopeCodec(Keyring.ephemeral())
    transport = GatedTransport()
    service = SchedulerService(SchedulerSettings(namespace="knobs"), transport, codec)
    route = Route("knobs.events", "alert.test")
    sends = [
        asyncio.ensure_future(
            service.publisher.publish(
                route, Alert(reason="backlog", severity="info", detail=str(i))
            )
        )
        for i in range(5)
    ]
    await asyncio.sleep(0.01)
    # The first went at once, alone; the rest wait for its confirm.
    assert [len(codec.decode(s.body)) for s in transport.sent] == [1]
    transport.waiting[0].set_result(None)
    await asyncio.sleep(0.01)
    assert [len(codec.decode(s.body)) for s in transport.sent] == [1, 4]
    transport.waiting[1].set_result(None)
    await asyncio.gather(*sends)
