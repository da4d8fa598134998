"""A balancer with tenants on two small nodes, in process, for the gate's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from boson_services.balancer.dispatcher import Dispatcher
from boson_services.balancer.handlers import BalancerHandlers
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.messages import (
    HeldTask,
    HeldWork,
    HeldWorkRequest,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import Names
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.scheduling.tenants import parse_tenants
from tests.support.balancer import N, snapshot
from tests.support.fakes import Clock, Published

NAMES = Names("bal-tenants")
ONE = ResourceVector(cpu=1, memory=1)
GRACE_S = 3.0
# Two nodes of 2 CPUs: a pool of 4. Tenant a may always use 2 and preempt for
# them; b has no quota and borrows whatever is idle; c may use 1, no more.
TENANTS = """
[tenants.a]
quota = { cpu = 2 }
may_preempt = true
[tenants.b]
[tenants.c]
quota = { cpu = 1 }
borrowing_limit = { cpu = 0 }
"""


class Balancer:
    """The handlers and gate of one balancer, and two fake executors that answer
    its takeover census with what runs on them: ``before`` (node → tasks an
    earlier balancer admitted) plus what this one assigned and has not finished."""

    def __init__(self, before: dict[str, list[HeldTask]] | None = None) -> None:
        self.clock = Clock(100.0)
        self.published = Published()
        self.dispatcher = Dispatcher(
            credit_per_slot=1,
            hot_threshold=0.9,
            retarget_after_s=60.0,
            imbalance_threshold=10.0,
            clock=self.clock,
        )
        self.gate = AdmissionGate(
            parse_tenants(TENANTS), self.dispatcher, grace_s=GRACE_S, clock=self.clock
        )
        self.handlers = BalancerHandlers(
            self.dispatcher, NAMES, self.published, park_after_s=600.0, gate=self.gate
        )
        self.runs: dict[str, asyncio.Future[Sequence[Emit]]] = {}
        self.before = before or {}
        self.finished: set[str] = set()
        self.answered: set[str] = set()
        self.silent: set[str] = set()
        """Nodes whose executor does not answer the census."""

    async def start(self) -> None:
        nodes = [N("n1", slots=2, capacity=2.0), N("n2", slots=2, capacity=2.0)]
        await self.handlers.on_event(snapshot(nodes))

    def place(self, task_id: str, tenant: str, **fields: Any) -> None:
        self.runs[task_id] = asyncio.ensure_future(
            self.handlers.on_placed(placed(task_id, tenant, **fields))
        )

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
            await self.answer_census()

    async def answer_census(self) -> None:
        for request in self.published.messages:
            if not isinstance(request, HeldWorkRequest) or request.message_id in self.answered:
                continue
            self.answered.add(request.message_id)
            for node_id in ("n1", "n2"):
                if node_id in self.silent:
                    continue
                held = [t for t in self.before.get(node_id, []) if t.task_id not in self.finished]
                held += [
                    HeldTask(task_id=a.task.task_id, tenant=a.task.tenant, demand=a.demand)
                    for a in self.assigned()
                    if a.node_id == node_id and a.task.task_id not in self.finished
                ]
                work = HeldWork(node_id=node_id, request_id=request.message_id, tasks=tuple(held))
                await self.handlers.on_event(work)

    def assigned(self) -> list[TaskAssigned]:
        return [m for m in self.published.messages if isinstance(m, TaskAssigned)]

    def assigned_ids(self) -> list[str]:
        return [m.task.task_id for m in self.assigned()]

    async def finish(self, task_id: str) -> None:
        result = TaskResult(
            message_id=f"{task_id}.result",
            task_id=task_id,
            handler="noop",
            status="succeeded",
            reply_to="c1",
            submitted_at=1.0,
        )
        self.finished.add(task_id)
        await self.handlers.on_event(result)
        await self.settle()


def placed(
    task_id: str,
    tenant: str,
    *,
    priority: int = 0,
    dispatched: int = 0,
    preempted: int = 0,
    node_id: str | None = None,
    demand: ResourceVector = ONE,
) -> TaskPlaced:
    task = TaskSubmitted(
        task_id=task_id, handler="noop", reply_to="c1", tenant=tenant, priority=priority
    )
    return TaskPlaced(
        message_id=f"{task_id}.placed{dispatched}",
        task=task,
        demand=demand,
        node_id=node_id,
        strategy="test" if not preempted else "preempted",
        dispatched=dispatched,
        preempted=preempted,
    )
