"""The census of work already on the nodes (``held.request``, ``held.barrier``,
``held.work``): a balancer that takes over admission asks every executor what
it holds, so that the tenants' usage starts from the work already running.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from boson_shared.contract.base import (
    DEFAULT_TENANT,
    Identifier,
    Message,
    Model,
    Priority,
    TenantName,
)
from boson_shared.contract.resources import ResourceVector

MAX_HELD_TASKS = 100_000
"""Tasks one :class:`HeldWork` lists at most (no node holds more: its slots' bound)."""


class HeldWorkRequest(Message):
    """Asked by a balancer that became the active one, with tenants: every
    executor answers with a :class:`HeldWork` on ``events/held.<reply_to>``,
    so that admission starts from the usage the work already running holds."""

    kind: Literal["held.request"] = "held.request"
    reply_to: Identifier


class HeldWorkBarrier(Message):
    """What an executor asked by a :class:`HeldWorkRequest` puts into its own
    node queue, behind the work dispatched there before the question. The
    queue is FIFO: when the barrier comes out, that work has all been
    delivered to the executor (it holds it, or has finished it), so the
    answer it gives then (``complete``) names the work that waited in the
    queue beyond its prefetch too."""

    kind: Literal["held.barrier"] = "held.barrier"
    request_id: Identifier
    """The ``message_id`` of the request."""
    reply_to: Identifier


class HeldTask(Model):
    """One task an executor holds (running, or waiting there for a slot)."""

    task_id: Identifier
    tenant: TenantName = DEFAULT_TENANT
    priority: Priority = 0
    demand: ResourceVector


class HeldWork(Message):
    """An executor's answer to a :class:`HeldWorkRequest`: what it holds now.

    It answers twice: at once (what it holds when asked), and when its
    :class:`HeldWorkBarrier` comes out of its node queue (``complete``: the
    work queued for it before the question is in the answer too)."""

    kind: Literal["held.work"] = "held.work"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: one answer, no complete
    node_id: Identifier
    request_id: Identifier
    """The ``message_id`` of the request answered."""
    tasks: Annotated[tuple[HeldTask, ...], Field(max_length=MAX_HELD_TASKS)] = ()
    complete: bool = True
    """Whether it covers the work queued for the node before the question
    (the barrier's answer). A version-1 executor's only answer counts as
    complete, as it did."""


__all__ = [
    "MAX_HELD_TASKS",
    "HeldTask",
    "HeldWork",
    "HeldWorkBarrier",
    "HeldWorkRequest",
]
