"""What a channel is: a route, the kinds on it, its ends, and the queues it lands in.

A :class:`Channel` is one route a message takes (an exchange and a routing
key) with the kinds it carries, who publishes them and the :class:`Consumer`
queues they land in. :class:`ChannelQueues` builds those queues from the same
:class:`~boson_shared.contract.topology.Names` the services declare them with,
so a renamed queue or a changed argument changes the channels too. The
catalogue of every route is :func:`boson_shared.contract.channels.channels`.

Placeholders in braces (``{node_id}``, ``{client_id}``, ``{instance_id}``)
stand for values known only at run time; pass ``Names("{namespace}")`` to get
the namespace as a placeholder too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from boson_shared.contract.messages import Message
from boson_shared.contract.topology import Names, QueueSpec

Role = Literal["client", "scheduler", "balancer", "executor", "monitor", "transfer"]

NODE_ID = "{node_id}"
CLIENT_ID = "{client_id}"
INSTANCE_ID = "{instance_id}"
REASON = "{reason}"
CLIENT_QUEUE_EXPIRES_MS = 24 * 3600 * 1000
"""A client's reply queue is deleted after a day without a consumer."""
NODE_QUEUE_EXPIRES_MS = 3_600_000
"""A node's queue outlives its executor by an hour (``node_queue_expires_s``'s default)."""
SUBSCRIBER_EXPIRES_MS = 600_000
"""Per-instance event queues of the services (``subscriber_expires_s``'s default)."""


@dataclass(frozen=True)
class Consumer:
    """One queue a channel's messages land in, and who reads it."""

    role: Role
    queue: QueueSpec
    binding_key: str
    """The key the queue is bound with (may be a topic pattern)."""


@dataclass(frozen=True)
class Channel:
    """One route: an exchange and a routing key, the kinds on it, its ends."""

    name: str
    exchange: str
    exchange_type: Literal["topic", "fanout", "direct"]
    routing_key: str
    kinds: tuple[type[Message], ...]
    publishers: tuple[Role, ...]
    consumers: tuple[Consumer, ...]
    mandatory: bool
    """Published ``mandatory``: if no queue is bound, the publisher gets an error."""
    summary: str
    parks_unroutable: bool = False
    """A message that routes to no queue is parked in the dead-letter queue
    (reason ``unroutable``) instead of being dropped."""


@dataclass(frozen=True)
class ChannelQueues:
    """The queues of one namespace that channels land in, as the services declare them."""

    names: Names
    submit: QueueSpec
    placed: QueueSpec
    node: QueueSpec
    client: QueueSpec
    own_queue: QueueSpec
    """An executor's own queue (a client queue named for its node): cancels, held-work requests."""
    chunks: QueueSpec
    requests: QueueSpec
    record: QueueSpec
    queries: QueueSpec
    reader: QueueSpec
    """A record reader's reply queue: its connection's own (``boson/records.py``)."""

    @classmethod
    def of(cls, names: Names) -> ChannelQueues:
        """The queues of ``names``' namespace, placeholders for run-time ids."""
        return cls(
            names,
            submit=names.submit().queue(names.submit_queue),
            placed=names.placed().queue(names.placed_queue),
            node=names.node(NODE_ID, NODE_QUEUE_EXPIRES_MS).queue(names.node_queue(NODE_ID)),
            client=names.client(CLIENT_ID, CLIENT_QUEUE_EXPIRES_MS).queue(
                names.client_queue(CLIENT_ID)
            ),
            own_queue=names.client(NODE_ID, NODE_QUEUE_EXPIRES_MS).queue(
                names.client_queue(NODE_ID)
            ),
            chunks=names.transfer().queue(names.chunks_queue),
            requests=names.transfer().queue(names.data_requests_queue),
            record=names.record().queue(names.record_queue),
            queries=names.record_queries().queue(names.record_queries_queue),
            reader=QueueSpec(
                names.subscriber_queue("records", CLIENT_ID),
                queue_type="classic",
                durable=False,
                exclusive=True,
            ),
        )

    def subscriber(self, role: Role, key: str) -> Consumer:
        """A service instance's own event queue, bound with ``key``."""
        names = self.names
        queue_name = names.subscriber_queue(role, INSTANCE_ID)
        spec = names.subscriber(role, INSTANCE_ID, [key], SUBSCRIBER_EXPIRES_MS).queue(queue_name)
        return Consumer(role, spec, key)


__all__ = [
    "CLIENT_ID",
    "CLIENT_QUEUE_EXPIRES_MS",
    "INSTANCE_ID",
    "NODE_ID",
    "NODE_QUEUE_EXPIRES_MS",
    "REASON",
    "SUBSCRIBER_EXPIRES_MS",
    "Channel",
    "ChannelQueues",
    "Consumer",
    "Role",
]
