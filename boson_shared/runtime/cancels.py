"""Answering a cancel command: one :class:`CancelAnswer` per task the service decided.

The balancer and the executors share it: each decides, per id, whether it
stopped the task (``cancelled``), found it already finished (``finished``),
or never held it (no answer: the client asks the task record instead).
"""

from __future__ import annotations

from collections.abc import Callable

from boson_shared.contract.messages import CancelAnswer, CancelTask, CancelVerdict
from boson_shared.contract.topology import Names, rk_cancel_answer
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route


def cancel_answers(
    cancel: CancelTask,
    decide: Callable[[str], CancelVerdict | None],
    names: Names,
    *,
    source: str,
    node_id: str | None = None,
) -> list[Emit]:
    """Decide each id of ``cancel`` with ``decide``; the answers to send to its canceller."""
    route = Route(names.events_exchange, rk_cancel_answer(cancel.reply_to))
    emits: list[Emit] = []
    for task_id in cancel.task_ids:
        verdict = decide(task_id)
        if verdict is not None:
            answer = CancelAnswer(
                request_id=cancel.message_id,
                task_id=task_id,
                verdict=verdict,
                source=source,
                node_id=node_id,
            )
            emits.append(Emit(route, answer))
    return emits


__all__ = ["cancel_answers"]
