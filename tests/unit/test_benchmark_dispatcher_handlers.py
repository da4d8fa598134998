"""The dispatcher benchmark's handlers: each goes on once a node takes its task.

The benchmark compares the balancer with and without admission, each task
with its handler as the live balancer has it. A handler left waiting for
ever keeps its task's objects alive, and the collector's walks of them would
be counted against admission.
"""

from __future__ import annotations

import asyncio

from benchmarks.dispatcher import Handlers, dispatcher_for, task_message, tenants_for
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.messages import ResourceVector

ONE = ResourceVector(cpu=1.0, memory=1.0)


async def test_a_handler_whose_task_a_node_took_when_admitted_goes_on() -> None:
    dispatcher = dispatcher_for(2)
    gate = AdmissionGate(tenants_for(2, 2), dispatcher, grace_s=30.0)
    gate.admission.set_pool((16.0, 16.0, 0.0))
    handlers = Handlers()
    task = task_message(0, gate.admission.names)

    def hold(future: asyncio.Future[str] | None) -> asyncio.Future[str]:
        held = dispatcher.hold(task.task_id, ONE, "n0", future=future)
        handlers.started(task.task_id, held)
        return held

    handlers.enter(task, ONE, hold, gate)
    assert list(handlers.waiting) == [task.task_id]  # in its tenant's line
    gate.admit()  # a node takes it as the gate hands it over
    await asyncio.sleep(0)
    assert not handlers.waiting
