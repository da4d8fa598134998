"""Credit-based dispatch of held work: who may send what to which node, now.

:class:`Dispatcher` is the balancer's whole dispatcher, built in layers:
:mod:`~boson_services.balancer.dispatch_state` (held work, node credit and
windows, the room tests), :mod:`~boson_services.balancer.dispatch_pump` (the
pump: placed nodes' queues, stealing, the flexible queue's clean-fit passes,
the head reservation), :mod:`~boson_services.balancer.holding` (holds, let-gos
and results), and here the cluster view: snapshots, nodes that go down, hot
or unusable nodes, rebalancing and the sweep of work long held for a busy
node. :mod:`~boson_services.balancer.dispatch_records` has the records they
share.

A result this balancer misses (its connection failing over while the
result was on its way) would hold its task's credit for ever. So credit is
reconciled with the node's own word: a task dispatched to a node whose
snapshots have shown it running nothing ever since (or since some time
after the dispatch) for ``missed_result_after_s`` on end can no longer be
queued, running or waiting out its retry delays there (the bound exceeds
the delays of the default retry policy), so the credit of a result that
never came is given back. A task retried more often than that policy, on a
node that looks idle throughout, may have its credit back early.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from boson_services.balancer.dispatch_records import HeldTask, NodeView
from boson_services.balancer.holding import Holding
from boson_shared.contract.messages import ClusterSnapshot
from boson_shared.scheduling.amounts import grid_columns
from boson_shared.scheduling.balancing import imbalance
from boson_shared.scheduling.devices import DeviceBook

RECENT_DISPATCH_S = 5.0
"""Dispatches this recent may be missing from a snapshot (heartbeat, then
snapshot interval): a snapshot never shows a node holding less than them."""


class Dispatcher(Holding):
    """Held work, node credit and the picking rules, following the cluster
    (its layers: see the module docstring)."""

    # -- cluster view ------------------------------------------------------

    def on_snapshot(self, snapshot: ClusterSnapshot) -> list[str]:
        """Apply the monitor's view; returns nodes that just went down."""
        self.room_changed += 1
        self._only_room = None
        went_down: list[str] = []
        for state in snapshot.nodes:
            node = self.nodes.get(state.node_id)
            # CPU and memory on the exact grid (boson_shared/scheduling/amounts.py):
            # what is dispatched and returned between snapshots adds up exactly.
            capacity = grid_columns(np.asarray(state.capacity.as_tuple(), dtype=np.float64))
            allocated = grid_columns(np.asarray(state.allocated.as_tuple(), dtype=np.float64))
            measured = max(state.measured_cpu, state.measured_memory)
            gpus = DeviceBook.of(
                state.capacity.gpu, [(g.model, g.allocated_milli) for g in state.gpus]
            )
            if node is None:
                node = NodeView(
                    state.node_id, state.alive, state.slots, capacity, allocated, measured
                )
                node.on_probation = state.on_probation
                node.gpus = gpus
                self.nodes[state.node_id] = node
                self.head.row(state.node_id)
            else:
                if node.alive and not state.alive:
                    went_down.append(state.node_id)
                node.alive = state.alive
                node.on_probation = state.on_probation
                node.slots = state.slots
                node.capacity = capacity
                # The snapshot may not show yet what was dispatched lately:
                # the node holds at least that.
                node.allocated = np.maximum(allocated, self._recent_demand(node))
                node.gpus = gpus
                node.measured = measured
            if state.running > 0:
                node.idle_since = None
            elif node.idle_since is None:
                node.idle_since = self.clock()
            self.resize(node)
        self._any_cool = any(
            n.alive and n.measured < self.hot_threshold for n in self.nodes.values()
        )
        self._spare.update((node_id, None) for node_id, n in self.nodes.items() if n.alive)
        for node_id in went_down:
            self._forget_node_work(node_id)
        self._give_back_missed()
        if self.head.reservation is not None:
            self.head.check_nodes({node_id: n.takes_work for node_id, n in self.nodes.items()})
        self._move_off_unusable_nodes()
        self.rebalance()
        self.pump()
        return went_down

    def _recent_demand(self, node: NodeView) -> np.ndarray:
        """Demand of tasks dispatched to ``node`` in the last ``RECENT_DISPATCH_S``.

        Only recent ones: older ones the node's heartbeats report themselves,
        and a result this balancer missed (its connection failing over) must
        not hold the node's room for ever.
        """
        since = self.clock() - RECENT_DISPATCH_S
        total = np.zeros_like(node.capacity)
        for task_id in node.in_flight:
            demand = self._demand_of.get(task_id)
            if demand is not None and self._sent_at.get(task_id, since) > since:
                total = total + demand
        return total

    def _give_back_missed(self) -> None:
        """Credit of results missed on nodes idle long enough (see the module docstring)."""
        now = self.clock()
        for node in self.nodes.values():
            since = node.idle_since
            if since is None or now - since < self.missed_result_after_s:
                continue
            missed = [
                t
                for t in node.in_flight
                if now - max(since, self._sent_at.get(t, now)) >= self.missed_result_after_s
            ]
            for task_id in missed:
                self.complete(task_id, pump=False)
            self.missed_results_total += len(missed)

    def _forget_node_work(self, node_id: str) -> None:
        # Its queued and unacked work is drained back to us and re-held.
        node = self.nodes[node_id]
        for task_id in node.in_flight:
            self.where.pop(task_id, None)
            self._demand_of.pop(task_id, None)
            self.head.forget(task_id)
            self._devices_of.pop(task_id, None)
            self._sent_at.pop(task_id, None)
        node.in_flight.clear()

    def _move_off_unusable_nodes(self) -> None:
        for node_id, queue in self.by_node.items():
            node = self.nodes.get(node_id)
            if queue and (node is None or not node.takes_work or self.is_hot(node)):
                self._retarget(queue, len(queue))

    def rebalance(self) -> int:
        """When measured load is uneven, send hot nodes' held work to cold ones."""
        alive = [n for n in self.nodes.values() if n.alive]
        if len(alive) < 2:
            return 0
        loads = np.array([n.measured for n in alive])
        if imbalance(loads) < self.imbalance_threshold:
            return 0
        mean = float(loads.mean())
        moved = 0
        for node in alive:
            queue = self.by_node.get(node.node_id)
            if queue and node.measured > mean:
                moved += self._retarget(queue, len(queue))
        return moved

    def sweep(self) -> int:
        """Work that waited too long for a busy node may go to any node.

        (Spare credit takes such work at once, see :meth:`_steal`; what is
        left here waits because no node could start it, and joins the
        flexible queue's order instead of its placed node's.)"""
        deadline = self.clock() - self.retarget_after_s
        moved = 0
        for queue in self.by_node.values():
            count = 0
            for held in queue:
                if held.since > deadline:
                    break
                count += 1
            moved += self._retarget(queue, count)
        if moved:
            self.pump()
        return moved

    def _retarget(self, queue: deque[HeldTask], count: int) -> int:
        moved = 0
        for _ in range(count):
            held = queue.popleft()
            if not held.future.done():
                self.flexible.append(held)
                moved += 1
        self.retargeted_total += moved
        return moved


__all__ = ["RECENT_DISPATCH_S", "Dispatcher"]
