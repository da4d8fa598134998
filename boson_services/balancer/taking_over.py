"""The handlers' part in a takeover: the census asked, the executors' answers adopted.

The first placement that reaches this instance makes it the active
balancer: with tenants, it asks the executors what they hold before it
admits anything, and charges each answer's tasks to their tenants
(:mod:`boson_services.balancer.takeover` tells the whole exchange).
"""

from __future__ import annotations

import logging

from boson_services.balancer.dispatching import Dispatching
from boson_services.balancer.takeover import CENSUS_WAIT_S, Census
from boson_services.balancer.tenancy import AdmissionGate
from boson_shared.contract.messages import HeldWork, HeldWorkRequest
from boson_shared.contract.topology import RK_HELD_REQUEST
from boson_shared.runtime.publisher import Route

logger = logging.getLogger(__name__)


class TakingOver(Dispatching):
    """The takeover census and its answers (dispatching:
    :class:`~boson_services.balancer.dispatching.Dispatching`)."""

    async def _take_over(self, gate: AdmissionGate) -> None:
        """The first placement: this instance is the active one now. Ask the
        executors what they hold before admitting
        (:mod:`boson_services.balancer.takeover`)."""
        request = HeldWorkRequest(reply_to=self.instance_id)
        alive = {node_id for node_id, node in self.dispatcher.nodes.items() if node.alive}
        gate.census = Census(request.message_id, gate.clock() + CENSUS_WAIT_S, awaiting=alive)
        logger.info("taking over admission: asking %d node(s) what they hold", len(alive))
        await self.publish(Route(self.names.events_exchange, RK_HELD_REQUEST), request)

    def on_held_work(self, work: HeldWork) -> None:
        """An executor's answer: charge its tasks to their tenants, then admit.
        Only its complete answer (the one its node queue's barrier brought,
        which names the work that queued there too) ends the wait for it."""
        gate = self.gate
        census = gate.census if gate is not None else None
        if gate is None or census is None or work.request_id != census.request_id:
            return
        # A result that came back first ended its task: it holds nothing now.
        tasks = [task for task in work.tasks if task.task_id not in self.finished]
        adopted = gate.adopt(work.node_id, tasks)
        if adopted:
            logger.info("node %s runs %d task(s) admitted before", work.node_id, adopted)
        if work.complete:
            census.answer(work.node_id)
        gate.request_pass()


__all__ = ["TakingOver"]
