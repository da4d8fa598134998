"""The control plane end to end: client → scheduler → balancer → node queues.

Monitor, scheduler and balancer are the real services, in-process, each on
its own connection (one transport per service, as in production); three
:class:`~boson.simulated_node.SimulatedNode` s heartbeat and answer assignments like
executors. Runs on RabbitMQ (the ``broker`` mark) and on the in-memory broker.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from boson.client import TaskRequest
from boson_shared.contract.messages import Message, TaskAssigned, TaskResult
from boson_shared.contract.topology import RK_ALL_RESULTS, rk_node
from tests.support.control_plane import CREDIT, TASKS, WAIT, ControlPlane
from tests.support.waiting import until


def is_assigned(message: Message) -> bool:
    return isinstance(message, TaskAssigned)


async def test_tasks_flow_within_credit_and_a_dead_nodes_queue_moves_to_the_others(
    plane: ControlPlane,
) -> None:
    await plane.start_control_plane()
    # binpack sends every task to the most allocated node: "doomed". It
    # takes four at a time and sits on them; the rest of its credit waits in
    # its queue at the broker.
    doomed = await plane.start_node("doomed", 5_000, hold_s=60.0, prefetch_factor=1)
    others = [
        await plane.start_node(node_id, allocated, hold_s=0.05, prefetch_factor=64)
        for node_id, allocated in (("node-a", 1_000), ("node-b", 2_000))
    ]
    await plane.until_scheduler_knows(3)
    names = doomed.names
    to_doomed = await plane.tap("doomed", names.work_exchange, rk_node("doomed"))
    results_tap = await plane.tap("results", names.events_exchange, RK_ALL_RESULTS)
    client = await plane.client()

    handles = await client.submit_many(
        [TaskRequest("noop", complexity=1, data_size=0) for _ in range(TASKS)]
    )

    # At least 50 tasks queued for the doomed node, counted at the broker: the
    # assignments that crossed to its queue (a tap beside it) and were never
    # answered. Assignments travel batched, so the queue's depth counts
    # envelopes, not tasks; the node itself has them all unacknowledged.
    def queued() -> int:
        sent = sum(1 for m in to_doomed.messages if isinstance(m, TaskAssigned))
        done = sum(
            1 for m in results_tap.messages if isinstance(m, TaskResult) and m.node_id == "doomed"
        )
        return sent - done

    await until(lambda: queued() >= 50, "50 tasks queued for the doomed node", WAIT)
    await asyncio.sleep(0.3)  # whatever else its credit allows arrives now
    assert 50 <= queued() <= CREDIT
    assert len(doomed.received) == queued()  # received, none answered

    # It stops heartbeating (and with it, its connection: a crashed node).
    doomed.heartbeating = False
    stranded = {m.task.task_id for m in to_doomed.messages if isinstance(m, TaskAssigned)}
    await doomed.transport.close()

    results = await asyncio.gather(*(handle.result(WAIT) for handle in handles))

    assert {r.task_id for r in results} == {h.task_id for h in handles}
    assert all(r.status == "succeeded" for r in results)
    by_task = {r.task_id: r for r in results}
    assert len(stranded) >= 50
    assert all(by_task[t].node_id in ("node-a", "node-b") for t in stranded)
    assert {r.node_id for r in results} == {"node-a", "node-b"}
    # Exactly once at the client, and no task ran twice.
    assert client.duplicates_dropped == 0
    await asyncio.sleep(0.3)
    answered = Counter(m.task_id for m in results_tap.messages if isinstance(m, TaskResult))
    assert set(answered) == set(by_task)
    assert set(answered.values()) == {1}
    # Never over credit: what a node held at once, and what the dead one was sent.
    for node in others:
        assert node.max_held <= CREDIT, (node.node_id, node.max_held)
    assert len(stranded) <= CREDIT
    assert doomed.received
    assert all(a.task.task_id in stranded for a in doomed.received)
    balancer = plane.balancer
    assert balancer is not None
    assert balancer.handlers.recovered_total >= len(stranded)
    assert "doomed" in balancer.draining
    monitor = plane.monitor
    assert monitor is not None
    assert monitor.handlers.view.alive_nodes() == ["node-a", "node-b"]


async def test_held_work_never_exceeds_credit_under_a_burst(plane: ControlPlane) -> None:
    await plane.start_control_plane()
    nodes = [
        await plane.start_node(node_id, allocated, hold_s=0.1, prefetch_factor=64)
        for node_id, allocated in (("n1", 100), ("n2", 200), ("n3", 300))
    ]
    await plane.until_scheduler_knows(3)
    client = await plane.client()
    handles = await client.submit_many(
        [TaskRequest("noop", complexity=1, data_size=0) for _ in range(TASKS)]
    )
    results = await asyncio.gather(*(handle.result(WAIT) for handle in handles))
    assert len({r.task_id for r in results}) == TASKS
    for node in nodes:
        assert node.max_held <= CREDIT, (node.node_id, node.max_held)
    # Credit, not the node's prefetch, was what bound it: the busiest node filled it.
    assert max(node.max_held for node in nodes) == CREDIT
    assert sum(len(node.received) for node in nodes) == TASKS


async def test_a_node_with_spare_credit_takes_work_its_busy_peer_cannot(
    plane: ControlPlane,
) -> None:
    # binpack places every task on "busy" (the most allocated node). What its
    # credit cannot take goes to "idle" at once: the sweep would move it only
    # after a minute here, and equal measured load means no rebalancing.
    await plane.start_control_plane(balancer={"retarget_after_s": 60.0})
    busy = await plane.start_node("busy", 5_000, hold_s=0.2, prefetch_factor=64)
    idle = await plane.start_node("idle", 1_000, hold_s=0.2, prefetch_factor=64)
    await plane.until_scheduler_knows(2)
    client = await plane.client()
    handles = await client.submit_many(
        [TaskRequest("noop", complexity=1, data_size=0) for _ in range(2 * CREDIT)]
    )
    results = await asyncio.gather(*(handle.result(WAIT) for handle in handles))
    assert len({r.task_id for r in results}) == 2 * CREDIT
    assert len(idle.received) >= CREDIT // 2, (len(busy.received), len(idle.received))
    assert busy.max_held <= CREDIT
    assert idle.max_held <= CREDIT
    balancer = plane.balancer
    assert balancer is not None
    assert balancer.dispatcher.stolen_total >= CREDIT // 2
    assert balancer.dispatcher.retargeted_total == 0
