"""The balancer's dispatcher under load: results and holds per second by cluster size.

Run ``python -m benchmarks.dispatcher`` from the repo root (no broker).

Every node gets eight tasks of held work, twice its credit (two slots, two
credits a slot), so none has credit to spare; then, ``--ops`` times, a
result comes back for some dispatched task (its node regains one credit, a
pump dispatches) and a new task is held for one of the nodes (another
pump). That is the balancer's work per task at full load, without the
broker and the codec; the figure should not fall as the cluster grows.
Time is the process's CPU time (the loop does no I/O), so other work on a
shared machine does not inflate it.

``--tenants N`` (repeatable) runs the same loop with admission across N
tenants in front of the dispatcher, as the balancer would run it: the pool
admits as many tasks as the run without tenants holds (eight a node) and
the rest, as many again, wait in their tenants' lines (quotas in the ratio
of weights 1 to 4, unlimited borrowing, preemption allowed); each result
releases its task's quota and a new task is submitted, then a pass admits
what fits (holding it for its node, the same node the run without tenants
would). Reclaim and the sweep that parks work past its age run on the live
balancer's timers (:data:`~boson_services.balancer.app.RECLAIM_INTERVAL_S`,
:data:`~boson_services.balancer.app.SWEEP_INTERVAL_S`) on the runs' clock,
which advances :data:`TASK_STEP_S` a task — on both sides of a comparison
where both have them. The dispatcher so does the same work in both
runs, and the difference is admission's. The table gives the rate, the
microseconds admission adds to each task against the run without tenants,
and the CPU time spent inside admission's calls alone (less the
dispatcher's work in the ``place`` callback), a second reading of the same.
A last figure runs the same backlog through the balancer's own
:class:`~boson_services.balancer.tenancy.AdmissionGate` — each task's
ticket, the room test on the dispatcher, the hand-over, the loop's turn —
as the live balancer does: the microseconds it adds to each task against
the run without tenants in which the loop turns once per task too (the
live balancer turns it for every delivery, tenants or not: the gate's
pass rides on that turn, and only what the pass adds is admission's).
The gate admits only what a node has credit for
(admitted work should not wait in the dispatcher), so there the rest of
the backlog waits in the tenants' lines instead.
The last column gives the gate's microseconds a task with each task's
handler on both sides (:func:`rate_with_handlers`): the live balancer
has a handler per task with or without tenants, which holds its task
(through the gate with one), awaits its future and is woken by that
future's done callback; the comparison before it has none in the run
without tenants, so it counts the handlers' cost (their creation, their
wake-up, the collector's walks of what waiting ones keep alive) against
admission. Both sides of that last comparison have as many tasks in the
balancer: eight a node admitted and eight waiting with tenants, sixteen
a node held by the dispatcher without — the live balancer's prefetch
(``max_held``) bounds the tasks it holds whether or not they wait in
tenants' lines, so without tenants the dispatcher holds them all.
Every figure is the best of ``--repeats`` runs taken in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import numpy as np

from boson_services.balancer.app import RECLAIM_INTERVAL_S, SWEEP_INTERVAL_S
from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.messages import (
    ClusterSnapshot,
    NodeState,
    ResourceVector,
    TaskSubmitted,
)
from boson_shared.runtime.compiled import describe
from boson_shared.runtime.heap import freeze_start_up_heap
from boson_shared.scheduling.admission import Admission, Running
from boson_shared.scheduling.tenants import TenantsConfig, TenantSpec

BACKLOG_PER_NODE = 8
"""Tasks held per node: the dispatcher's backlog, and with tenants what the pool admits."""

WAITING_PER_NODE = 8
"""With tenants, tasks per node waiting in the tenants' lines beyond those admitted."""

TASK_STEP_S = 0.001
"""The runs' clock advances this much a task (a result and a new task)."""
RECLAIM_EVERY = round(RECLAIM_INTERVAL_S / TASK_STEP_S)
"""Tasks between two reclaims: the live balancer reclaims on a timer, not per task."""
SWEEP_EVERY = round(SWEEP_INTERVAL_S / TASK_STEP_S)
"""Tasks between two sweeps (parking what waited too long), on a timer there too."""


def snapshot(nodes: int) -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="bench",
        seq=1,
        nodes=tuple(
            NodeState(
                node_id=f"n{i}",
                alive=True,
                capacity=ResourceVector(cpu=1e6, memory=1e6),
                allocated=ResourceVector(cpu=float(i), memory=float(i)),
                slots=2,
                running=0,
                free_slots=2,
                measured_cpu=0.2,
                measured_memory=0.2,
                last_heartbeat_at=0.0,
            )
            for i in range(nodes)
        ),
    )


def dispatcher_for(nodes: int) -> Dispatcher:
    dispatcher = Dispatcher(
        credit_per_slot=2,
        hot_threshold=0.9,
        retarget_after_s=60.0,
        imbalance_threshold=10.0,
        rng=np.random.default_rng(0),
    )
    dispatcher.on_snapshot(snapshot(nodes))
    return dispatcher


async def rate(nodes: int, ops: int, *, turn: bool = False) -> float:
    """Result + hold pairs per second with ``nodes`` saturated nodes; with
    ``turn``, the event loop turns once per pair, as it does for the
    deliveries that bring a result and a task to the live balancer, and
    each task's message is made (as decoding one would) and let go once held."""
    dispatcher = dispatcher_for(nodes)
    demand = ResourceVector(cpu=1.0, memory=1.0)
    held = 0
    for _ in range(nodes * BACKLOG_PER_NODE):
        dispatcher.hold(f"t{held}", demand, f"n{held % nodes}")
        held += 1
    start = time.process_time()
    for op in range(ops):
        dispatcher.complete(next(iter(dispatcher.where)))
        if turn:
            task = TaskSubmitted(task_id=f"t{held}", handler="noop", reply_to="bench")
            dispatcher.hold(task.task_id, demand, f"n{held % nodes}")
            await asyncio.sleep(0)
            if op % SWEEP_EVERY == 0:
                dispatcher.overdue(600.0)  # the sweep, as through the gate
        else:
            dispatcher.hold(f"t{held}", demand, f"n{held % nodes}")
        held += 1
    return ops / (time.process_time() - start)


class Handlers:
    """Handler coroutines driven by hand, as the live balancer has them: each
    holds its task (through the gate, with one) and waits on the task's
    future; the future's done callback — a call on the event loop's next
    turn, as an awaiting task's wake-up is — takes it on to its end."""

    def __init__(self) -> None:
        self.waiting: dict[str, Coroutine[Any, Any, str]] = {}

    def enter(
        self,
        task: TaskSubmitted,
        demand: ResourceVector,
        hold: Callable[[asyncio.Future[str] | None], asyncio.Future[str]],
        gate: AdmissionGate | None,
    ) -> None:
        """The task's handler starts and waits for its node, as the balancer's does."""

        async def handler() -> str:
            future = hold(None) if gate is None else gate.enter(task, demand, hold, front=False)
            return await future

        entering = handler()
        try:
            entering.send(None)  # to its wait
        except StopIteration:
            return  # a node took it at once: the handler went on to its end
        self.waiting[task.task_id] = entering

    def started(self, task_id: str, future: asyncio.Future[str]) -> None:
        """The task was handed to the dispatcher with ``future``: its handler
        goes on once that is done — at the loop's next turn if a node took it
        at once, as an awaiting task is woken (a handler that waits through
        the gate already awaits this future when the pass hands it over)."""
        future.add_done_callback(lambda _: self._wake(task_id))

    def _wake(self, task_id: str) -> None:
        entering = self.waiting.pop(task_id, None)
        if entering is not None:
            with contextlib.suppress(StopIteration):
                entering.send(None)

    def close(self) -> None:
        for entering in self.waiting.values():
            entering.close()
        self.waiting.clear()  # a wake-up still due finds nothing to resume


async def rate_with_handlers(nodes: int, ops: int, tenants: int | None = None) -> float:
    """As :func:`rate` with ``turn`` (``tenants`` None) or
    :func:`rate_through_gate`, each task with its handler as the live
    balancer has it, tenants or not: the handler holds its task (through the
    gate) and waits on its future, and the future's done callback takes it
    on. The backlog's messages and handlers exist before the timing; the
    backlog is as large with tenants as without (eight a node admitted and
    eight waiting in tenants' lines; sixteen held)."""
    dispatcher = dispatcher_for(nodes)
    now = 0.0
    gate = None
    names: tuple[str, ...] = ()
    # As many tasks in the balancer on both sides (see the module docstring).
    backlog = nodes * (BACKLOG_PER_NODE + WAITING_PER_NODE)
    if tenants is not None:
        gate = AdmissionGate(
            tenants_for(nodes, tenants), dispatcher, grace_s=30.0, clock=lambda: now
        )
        pool = float(nodes * BACKLOG_PER_NODE)
        gate.admission.set_pool((pool, pool, 0.0))
        names = gate.admission.names
    demand = ResourceVector(cpu=1.0, memory=1.0)
    handlers = Handlers()

    def message(number: int) -> TaskSubmitted:
        return task_message(number, names if tenants is not None else ())

    backlog_messages = {n: message(n) for n in range(backlog)}

    def enter(number: int) -> None:
        task = backlog_messages.pop(number) if number < backlog else message(number)
        task_id = task.task_id

        def hold(future: asyncio.Future[str] | None) -> asyncio.Future[str]:
            held = dispatcher.hold(task_id, demand, f"n{number % nodes}", future=future)
            handlers.started(task_id, held)
            return held

        handlers.enter(task, demand, hold, gate)

    submitted = 0
    for _ in range(backlog):
        enter(submitted)
        submitted += 1
    if gate is not None:
        gate.admit()
    await asyncio.sleep(0)  # the handlers of what a node took go on
    start = time.process_time()
    for op in range(ops):
        now += TASK_STEP_S
        done = next(iter(dispatcher.where))
        dispatcher.complete(done)
        if gate is not None:
            gate.finished(done)
        enter(submitted)
        submitted += 1
        # A turn of the loop: the handlers of what a node took go on, and
        # with the gate its one admission pass runs.
        await asyncio.sleep(0)
        # The live balancer's timers, on this run's clock, on both sides.
        if gate is not None and op % RECLAIM_EVERY == 0:
            gate.reclaim()
        if op % SWEEP_EVERY == 0:
            dispatcher.overdue(600.0)
            if gate is not None:
                gate.overdue(600.0)
    took = time.process_time() - start
    handlers.close()
    return ops / took


def task_message(number: int, tenants: Sequence[str]) -> TaskSubmitted:
    """Task ``number``'s message, of tenant ``number`` modulo their count (none: no tenant)."""
    if not tenants:
        return TaskSubmitted(task_id=f"t{number}", handler="noop", reply_to="bench")
    return TaskSubmitted(
        task_id=f"t{number}",
        handler="noop",
        reply_to="bench",
        tenant=tenants[number % len(tenants)],
    )


def tenants_for(nodes: int, tenants: int) -> TenantsConfig:
    share = float(nodes * BACKLOG_PER_NODE) / tenants
    return TenantsConfig(
        tenants={
            f"t{k}": TenantSpec(
                quota={"cpu": share, "memory": share}, weight=1 + k % 4, may_preempt=True
            )
            for k in range(tenants)
        }
    )


def admission_for(nodes: int, tenants: int) -> Admission:
    pool = float(nodes * BACKLOG_PER_NODE)
    admission = Admission(tenants_for(nodes, tenants))
    admission.set_pool((pool, pool, 0.0))
    return admission


async def rate_with_tenants(nodes: int, tenants: int, ops: int, *, inside: bool = False) -> float:
    """As :func:`rate`, with admission across ``tenants`` tenants in front:
    result + hold pairs per second; with ``inside``, instead the CPU µs a task
    spent inside admission's calls, less the ``place`` callback's (the clock
    read around each call costs time, so the rate is taken without)."""
    dispatcher = dispatcher_for(nodes)
    admission = admission_for(nodes, tenants)
    demand = ResourceVector(cpu=1.0, memory=1.0)
    vector = (1.0, 1.0, 0.0)
    names = admission.names
    runs: dict[str, Running] = {}
    placing = 0.0
    held = 0
    now = 0.0

    def place(offer: Running) -> int:
        nonlocal held, placing
        started = time.process_time() if inside else 0.0
        task_id = str(offer.key)
        dispatcher.hold(task_id, demand, f"n{held % nodes}")
        held += 1
        runs[task_id] = offer
        if inside:
            placing += time.process_time() - started
        return 1

    submitted = 0
    for _ in range(nodes * (BACKLOG_PER_NODE + WAITING_PER_NODE)):
        admission.submit(f"t{submitted}", names[submitted % tenants], vector, now)
        submitted += 1
    admission.admit(now, place)
    assert held == nodes * BACKLOG_PER_NODE
    spent = placing = 0.0
    start = time.process_time()
    for op in range(ops):
        now += TASK_STEP_S
        done = next(iter(dispatcher.where))
        dispatcher.complete(done)
        began = time.process_time() if inside else 0.0
        admission.release(runs.pop(done))
        admission.submit(f"t{submitted}", names[submitted % tenants], vector, now)
        submitted += 1
        admission.admit(now, place)
        if op % RECLAIM_EVERY == 0:
            admission.reclaim(now)
        if inside:
            spent += time.process_time() - began
    elapsed = time.process_time() - start
    return (spent - placing) / ops * 1e6 if inside else ops / elapsed


async def rate_through_gate(nodes: int, tenants: int, ops: int) -> float:
    """As :func:`rate_with_tenants`, through the balancer's admission gate:
    result + hold pairs per second.

    Each task enters the gate as a handler would (its coroutine driven by
    hand up to its wait on the gate's future, and on once a node took it);
    each result ends its ticket;
    then the event loop turns once — running the one admission pass the
    turn's result and new task asked for — and reclaim and the sweep run on
    their timers (see the module docstring). The run it
    is compared to (:func:`rate` with ``turn``) turns the loop once a task
    too and makes each task's message as this one does.
    """
    dispatcher = dispatcher_for(nodes)
    now = 0.0
    gate = AdmissionGate(tenants_for(nodes, tenants), dispatcher, grace_s=30.0, clock=lambda: now)
    pool = float(nodes * BACKLOG_PER_NODE)
    gate.admission.set_pool((pool, pool, 0.0))
    demand = ResourceVector(cpu=1.0, memory=1.0)
    names = gate.admission.names
    waiting: dict[str, Coroutine[Any, Any, str]] = {}
    admitted: list[tuple[str, asyncio.Future[str]]] = []
    backlog = nodes * (BACKLOG_PER_NODE + WAITING_PER_NODE)

    def message(number: int) -> TaskSubmitted:
        return task_message(number, names)

    # The backlog's messages exist before the timing; each later task's is
    # made when it comes, as in the run without tenants it is compared to.
    backlog_messages = {n: message(n) for n in range(backlog)}

    def enter(number: int) -> None:
        task = backlog_messages.pop(number) if number < backlog else message(number)
        task_id = task.task_id

        def start(future: asyncio.Future[str]) -> asyncio.Future[str]:
            admitted.append((task_id, future))
            return dispatcher.hold(task_id, demand, f"n{number % nodes}", future=future)

        async def handler() -> str:
            return await gate.enter(task, demand, start, front=False)

        entering = handler()
        entering.send(None)  # to its wait
        waiting[task_id] = entering

    def resume_admitted() -> None:
        """The handlers of admitted tasks a node took go on (here: to their end)."""
        still: list[tuple[str, asyncio.Future[str]]] = []
        for task_id, future in admitted:
            if not future.done():
                still.append((task_id, future))
                continue
            with contextlib.suppress(StopIteration):
                waiting.pop(task_id).send(None)
        admitted[:] = still

    submitted = 0
    for _ in range(backlog):
        enter(submitted)
        submitted += 1
    gate.admit()
    resume_admitted()
    start_cpu = time.process_time()
    for op in range(ops):
        now += TASK_STEP_S
        done = next(iter(dispatcher.where))
        dispatcher.complete(done)
        gate.finished(done)
        enter(submitted)
        submitted += 1
        await asyncio.sleep(0)  # a turn of the loop: its one admission pass
        resume_admitted()
        # The live balancer's timers, on this run's clock.
        if op % RECLAIM_EVERY == 0:
            gate.reclaim()
        if op % SWEEP_EVERY == 0:
            dispatcher.overdue(600.0)
            gate.overdue(600.0)  # the sweep's, which also forgets waits that ended
    took = time.process_time() - start_cpu
    for entering in waiting.values():
        entering.close()
    return ops / took


async def main_async(args: argparse.Namespace) -> int:
    # The balancer's process freezes its start-up heap once started
    # (boson_shared/runtime/heap.py): so does this one, before it measures,
    # so the collector's full passes walk what the runs build, as there.
    freeze_start_up_heap()
    print(describe())  # compiled (as a built install runs it) or pure Python
    print(
        f"{'nodes':>6}  {'tenants':>7}  {'results+holds/s':>16}  {'admission µs/task':>18}"
        f"  {'inside admission µs/task':>25}  {'through the gate µs/task':>25}"
        f"  {'gate, handlers both sides µs/task':>34}"
    )
    for nodes in args.nodes:
        # Each figure is the best of ``--repeats`` runs, taken in turn, so a
        # burst of other work on a shared machine skews none of them alone.
        plain = turning = handled = 0.0
        with_tenants = dict.fromkeys(args.tenants, 0.0)
        inside = dict.fromkeys(args.tenants, float("inf"))
        gated = dict.fromkeys(args.tenants, 0.0)
        gated_handlers = dict.fromkeys(args.tenants, 0.0)
        for _ in range(args.repeats):
            plain = max(plain, await rate(nodes, args.ops))
            turning = max(turning, await rate(nodes, args.ops, turn=True))
            handled = max(handled, await rate_with_handlers(nodes, args.ops))
            for tenants in args.tenants:
                with_tenants[tenants] = max(
                    with_tenants[tenants], await rate_with_tenants(nodes, tenants, args.ops)
                )
                inside[tenants] = min(
                    inside[tenants], await rate_with_tenants(nodes, tenants, args.ops, inside=True)
                )
                gated[tenants] = max(
                    gated[tenants], await rate_through_gate(nodes, tenants, args.ops)
                )
                gated_handlers[tenants] = max(
                    gated_handlers[tenants], await rate_with_handlers(nodes, args.ops, tenants)
                )
        print(
            f"{nodes:>6}  {'-':>7}  {plain:>16,.0f}  {'-':>18}  {'-':>25}  {'-':>25}"
            f"  {'-':>34}  ({turning:,.0f}/s turning the loop once a task,"
            f" {handled:,.0f}/s with handlers too)"
        )
        for tenants in args.tenants:
            added = (1 / with_tenants[tenants] - 1 / plain) * 1e6
            through = (1 / gated[tenants] - 1 / turning) * 1e6
            beside = (1 / gated_handlers[tenants] - 1 / handled) * 1e6
            print(
                f"{nodes:>6}  {tenants:>7}  {with_tenants[tenants]:>16,.0f}  {added:>18.1f}"
                f"  {inside[tenants]:>25.1f}  {through:>25.1f}  {beside:>34.1f}"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 100, 1000])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, nargs="*", default=[1, 20])
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs each")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
