"""The knobs the pipeline's throughput rests on, without a broker.

* The balancer's credit window: ``slots × credit_per_slot`` until results
  report task times, then wide for short tasks (up to
  ``max_credit_per_slot``), and narrow again as soon as tasks are long.
* A service's publisher keeps one envelope per lane in flight by default
  (``batch_max_in_flight``): what arrives meanwhile leaves in one envelope.
* The balancer's hot path: holding work schedules no timer per task (the
  periodic sweep parks what waited too long), and a flexible queue stuck
  behind work that fits nowhere tests each distinct demand once per pump.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np

from boson_services.balancer.dispatch_records import HeldTask, NodeView
from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.handlers import BalancerHandlers
from boson_services.scheduler.app import SchedulerService
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    Alert,
    ClusterSnapshot,
    NodeState,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskSubmitted,
)
from boson_shared.contract.topology import RK_PARKED, Names
from boson_shared.runtime.publisher import Route
from tests.support.fakes import Clock, Published
from tests.support.gated_transport import GatedTransport

SLOTS = 2
NAMES = Names("knobs")


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


# -- the balancer's hot path: no timer per held task, one fit test per demand --


def holding_dispatcher(credit_per_slot: int, clock: Clock | None = None) -> Dispatcher:
    """A dispatcher that never re-targets or rebalances within a test's time."""
    return Dispatcher(
        credit_per_slot=credit_per_slot,
        hot_threshold=0.9,
        retarget_after_s=60.0,
        imbalance_threshold=10.0,
        clock=clock or Clock(),
    )


async def test_holding_work_schedules_no_timer_per_task_and_the_sweep_parks_it() -> None:
    clock = Clock()
    d = holding_dispatcher(2, clock)  # no nodes: everything stays held
    published = Published()
    handlers = BalancerHandlers(d, NAMES, published, park_after_s=600.0)
    loop = asyncio.get_running_loop()
    timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
    tasks = [
        asyncio.ensure_future(
            handlers.on_placed(
                TaskPlaced(
                    task=TaskSubmitted(task_id=f"t{i}", handler="noop", reply_to="c"),
                    demand=demand(),
                    node_id=None,
                    strategy="binpack",
                )
            )
        )
        for i in range(50)
    ]
    await asyncio.sleep(0)
    assert len(d.held) == 50
    # No timer (wait_for) per held task: the sweep parks them instead.
    assert len(loop._scheduled) == timers_before  # type: ignore[attr-defined]

    clock.now = 599.0
    assert handlers.park_overdue() == 0
    assert published.sent == []
    clock.now = 600.0
    assert handlers.park_overdue() == 50
    assert await asyncio.gather(*tasks) == [[]] * 50
    assert d.held == {}
    assert len(published.sent) == 50
    for route, message in published.sent:
        assert route == Route(NAMES.work_exchange, RK_PARKED, mandatory=True)
        assert isinstance(message, TaskPlaced)
        assert message.strategy == "parked"
        assert not message.message_id.startswith(message.task.task_id)
    assert handlers.parked_total == 50
    assert handlers.park_overdue() == 0


async def test_a_dispatched_task_is_never_parked_and_a_cancelled_one_is_released() -> None:
    clock = Clock()
    d = holding_dispatcher(1, clock)
    d.on_snapshot(snapshot("a"))  # window 2: two go at once, the third waits
    published = Published()
    handlers = BalancerHandlers(d, NAMES, published, park_after_s=10.0)

    def placed(i: int) -> TaskPlaced:
        task = TaskSubmitted(task_id=f"t{i}", handler="noop", reply_to="c")
        return TaskPlaced(task=task, demand=demand(), node_id="a", strategy="binpack")

    assert await handlers.on_placed(placed(0)) == []
    assert await handlers.on_placed(placed(1)) == []
    waiting = asyncio.ensure_future(handlers.on_placed(placed(2)))
    await asyncio.sleep(0)
    assert set(d.held) == {"t2"}
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert d.held == {}
    clock.now = 100.0
    assert handlers.park_overdue() == 0
    assert [type(m) for m in published.messages] == [TaskAssigned, TaskAssigned]
    assert d.where == {"t0": "a", "t1": "a"}


async def test_a_stuck_flexible_queue_costs_one_fit_test_per_distinct_demand() -> None:
    d = dispatcher()
    d.nodes["a"].capacity = np.array([1.0, 1.0, 0.0])  # room for one demand()
    calls = 0
    pick_any = d._pick_any

    def counting(
        held: HeldTask, open_nodes: list[NodeView], clean: object = None
    ) -> NodeView | None:
        nonlocal calls
        calls += 1
        return pick_any(held, open_nodes, clean)  # type: ignore[arg-type]

    d._pick_any = counting  # type: ignore[method-assign]
    first = d.hold("t0", demand(), None)
    assert first.done()  # it fits; now the node is full
    calls = 0
    waiting = [d.hold(f"t{i}", demand(), None) for i in range(1, 41)]
    assert not any(f.done() for f in waiting)
    # Each of the 40 pumps tested the one demand once per pass (clean fits
    # first, then any fit), not once per held task.
    assert calls == 2 * 40
    # A smaller demand behind the stuck ones still gets its own tests (and no room).
    d.hold("small", ResourceVector(cpu=0.5), None)
    assert calls == 2 * 42
    assert [h.task_id for h in d.flexible][:3] == ["t1", "t2", "t3"]


async def test_a_handler_cancelled_just_after_its_node_was_given_still_assigns() -> None:
    # Cancelled just after the dispatcher gave the task a node: the node's
    # credit is spent, so the assignment still goes out (handing the delivery
    # back could lose the task if the queue it returns to is being removed).
    d = holding_dispatcher(1)
    published = Published()
    handlers = BalancerHandlers(d, NAMES, published, park_after_s=600.0)
    task = TaskSubmitted(task_id="t0", handler="noop", reply_to="c")
    waiting = asyncio.ensure_future(
        handlers.on_placed(TaskPlaced(task=task, demand=demand(), node_id="a", strategy="binpack"))
    )
    await asyncio.sleep(0)
    assert set(d.held) == {"t0"}  # no node known yet
    d.on_snapshot(snapshot("a"))  # credit: the future gets its node ...
    waiting.cancel()  # ... and the handler is cancelled before it resumes
    assert await waiting == []
    assert [type(m) for m in published.messages] == [TaskAssigned]
    assert d.where == {"t0": "a"}
