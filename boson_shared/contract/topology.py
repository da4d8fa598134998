"""Exchanges, queues, routing keys and dead-lettering: the one description.

Every name carries the namespace (``BOSON_NAMESPACE``), so tests and tenants
never collide. Both transports declare exactly what this module describes;
``deploy/rabbitmq/definitions.json`` mirrors it for the default namespace.

Layout (docs/design.md#topology):

* ``<ns>.work`` (topic) carries commands to competing consumers:
  ``task.submit`` → ``<ns>.tasks.submit`` (schedulers),
  ``task.placed`` → ``<ns>.tasks.placed`` (balancer, single active consumer),
  ``node.<id>`` → ``<ns>.node.<id>`` (one executor),
  ``data.chunk`` / ``data.request`` → the transfer service's queues.
* ``<ns>.events`` (topic) carries what several services need: heartbeats,
  results, snapshots, alerts, data replies. Each consumer binds its own queue.
* ``<ns>.dead`` (fanout) → ``<ns>.dead-letter``: bad bytes and exhausted
  retries, with the reason in the headers.
* Delayed retries: per namespace, one queue per delay tier
  (``<ns>.retry.<ms>ms``, fed by a fanout exchange of the same name) whose
  messages expire after the delay and dead-letter, with the routing key they
  were published under (the origin queue's name), to ``<ns>.retry.return``:
  a direct exchange every consumed queue binds under its own name. A
  message whose origin queue is gone falls through to ``<ns>.dead``
  (the return exchange's alternate exchange).

Work queues have the configured type (``BOSON_QUEUE_TYPE``, quorum by
default). A client's reply queue is quorum too, without an expiry (the
client deletes it). Each service instance's subscriber queue is exclusive to
its connection: it lives on the node that connection is on and is declared
again, with its bindings, wherever the connection fails over to. Retry
tiers have the configured type; quorum tiers dead-letter *at least once*,
so a task waiting out its delay outlives a broker node
(docs/design.md#queue-types-on-a-cluster).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from boson_shared.contract.declarations import (
    BindingSpec,
    ExchangeSpec,
    ExchangeType,
    QueueSpec,
    QueueType,
    RetryPolicy,
    Topology,
)
from boson_shared.contract.routing import (
    DEFAULT_EXCHANGE,
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_KIND,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
    REASON_PERMANENT_ERROR,
    REASON_RETRIES_EXHAUSTED,
    REASON_UNEXPECTED_KIND,
    REASON_UNROUTABLE,
    RK_ALL_ALERTS,
    RK_ALL_DATA_STORED,
    RK_ALL_HEARTBEATS,
    RK_ALL_PROGRESS,
    RK_ALL_RESULTS,
    RK_BACKLOG,
    RK_BLOBS_REFERENCED,
    RK_CANCEL,
    RK_DATA_CHUNK,
    RK_DATA_REQUEST,
    RK_HELD_REQUEST,
    RK_PARKED,
    RK_PLACED,
    RK_RECORD_EVENT,
    RK_RECORD_QUERY,
    RK_SNAPSHOT,
    RK_SUBMIT,
    RK_TENANTS,
    rk_alert,
    rk_cancel_answer,
    rk_data_reply,
    rk_data_stored,
    rk_heartbeat,
    rk_held_work,
    rk_node,
    rk_progress,
    rk_record_reply,
    rk_result,
    rk_retrying,
)


@dataclass(frozen=True)
class Names:
    """Every exchange and queue name of one namespace."""

    namespace: str = "boson"
    queue_type: QueueType = "quorum"
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def work_exchange(self) -> str:
        return f"{self.namespace}.work"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead-letter"

    @property
    def submit_queue(self) -> str:
        return f"{self.namespace}.tasks.submit"

    @property
    def placed_queue(self) -> str:
        return f"{self.namespace}.tasks.placed"

    @property
    def chunks_queue(self) -> str:
        return f"{self.namespace}.transfer.chunks"

    @property
    def data_requests_queue(self) -> str:
        return f"{self.namespace}.transfer.requests"

    @property
    def record_queue(self) -> str:
        """Lifecycle events and results for the task record (competing monitors)."""
        return f"{self.namespace}.record.events"

    @property
    def record_queries_queue(self) -> str:
        return f"{self.namespace}.record.queries"

    def node_queue(self, node_id: str) -> str:
        return f"{self.namespace}.node.{node_id}"

    def client_queue(self, client_id: str) -> str:
        return f"{self.namespace}.client.{client_id}"

    def subscriber_queue(self, service: str, instance_id: str) -> str:
        """A per-instance event queue (each replica sees every event)."""
        return f"{self.namespace}.{service}.{instance_id}"

    def retry_tier(self, delay_ms: int) -> str:
        """The delay tier's queue and the fanout exchange that feeds it (one name)."""
        return f"{self.namespace}.retry.{delay_ms}ms"

    @property
    def retry_return_exchange(self) -> str:
        """Where expired retries go back to their queue (bound under its own name)."""
        return f"{self.namespace}.retry.return"

    # -- topology builders -------------------------------------------------

    def base(self) -> Topology:
        """Exchanges and the dead-letter queue: what every service needs."""
        return Topology(
            exchanges=(
                ExchangeSpec(self.work_exchange, "topic"),
                ExchangeSpec(self.events_exchange, "topic"),
                ExchangeSpec(self.dead_exchange, "fanout"),
            ),
            queues=(QueueSpec(self.dead_letter_queue, queue_type=self.queue_type),),
            bindings=(BindingSpec(self.dead_letter_queue, self.dead_exchange, "#"),),
        )

    def retry_tiers(self) -> Topology:
        """The namespace's delay tiers, shared by every consumed queue.

        A failed message is published to the tier's fanout exchange under
        its origin queue's name; it expires after the delay and is
        dead-lettered with that routing key to the return exchange, where
        the origin queue is bound under its own name. One set for the whole
        namespace, never expiring: no queue comes and goes with a node, a
        client or an instance. Quorum tiers dead-letter at least once (the
        message leaves the tier only once its origin queue confirmed it),
        so a node that dies while a task waits out its delay loses nothing.
        What routes nowhere on return (its queue was deleted or expired)
        goes to the alternate exchange, the dead-letter exchange, rather
        than wait in the tier for ever.
        """
        tiers = sorted(set(self.retry.delays_ms))
        return Topology(
            exchanges=(
                ExchangeSpec(
                    self.retry_return_exchange, "direct", alternate_exchange=self.dead_exchange
                ),
                *(ExchangeSpec(self.retry_tier(delay), "fanout") for delay in tiers),
            ),
            queues=tuple(
                QueueSpec(
                    self.retry_tier(delay),
                    queue_type=self.queue_type,
                    message_ttl_ms=delay,
                    dead_letter_exchange=self.retry_return_exchange,
                    dead_letter_at_least_once=True,
                )
                for delay in tiers
            ),
            bindings=tuple(
                BindingSpec(self.retry_tier(delay), self.retry_tier(delay), "") for delay in tiers
            ),
        )

    def work_queue(
        self,
        name: str,
        routing_keys: Iterable[str],
        *,
        exchange: str | None = None,
        expires_ms: int | None = None,
        single_active_consumer: bool = False,
        queue_type: QueueType | None = None,
        exclusive: bool = False,
    ) -> Topology:
        """A consumed queue, its bindings, and the way back from the retry tiers."""
        bound_to = self.work_exchange if exchange is None else exchange
        queues = [
            QueueSpec(
                name,
                queue_type="classic" if exclusive else (queue_type or self.queue_type),
                durable=not exclusive,
                expires_ms=None if exclusive else expires_ms,
                dead_letter_exchange=self.dead_exchange,
                single_active_consumer=single_active_consumer,
                exclusive=exclusive,
            )
        ]
        bindings = (
            *(BindingSpec(name, bound_to, key) for key in routing_keys),
            BindingSpec(name, self.retry_return_exchange, name),
        )
        return self.base() + self.retry_tiers() + Topology(queues=tuple(queues), bindings=bindings)

    def submit(self) -> Topology:
        return self.work_queue(self.submit_queue, [RK_SUBMIT])

    def placed(self) -> Topology:
        return self.work_queue(
            self.placed_queue, [RK_PLACED, RK_PARKED], single_active_consumer=True
        )

    def node(self, node_id: str, expires_ms: int) -> Topology:
        return self.work_queue(self.node_queue(node_id), [rk_node(node_id)], expires_ms=expires_ms)

    def client(self, client_id: str, expires_ms: int) -> Topology:
        """A client's own reply queue: quorum, never expiring.

        It holds results the client waits for, so it must outlive the loss
        of any one broker node, and a client that reconnects under the same
        id finds it; the client deletes it (:meth:`Client.close` when nothing
        is pending, ``delete_queues``). ``expires_ms`` is unused (kept for
        callers): the reply queue has no expiry of its own.
        """
        return self.work_queue(
            self.client_queue(client_id),
            [
                rk_result(client_id),
                rk_retrying(client_id),
                rk_data_reply(client_id),
                rk_data_stored(client_id),
                rk_cancel_answer(client_id),
                rk_progress(client_id),
            ],
            exchange=self.events_exchange,
            queue_type="quorum",
        )

    def reply(self, client_id: str) -> Topology:
        """A service's own reply queue (data replies), exclusive to its connection."""
        return self.work_queue(
            self.client_queue(client_id),
            [rk_data_reply(client_id), rk_data_stored(client_id)],
            exchange=self.events_exchange,
            exclusive=True,
        )

    def subscriber(
        self,
        service: str,
        instance_id: str,
        routing_keys: Iterable[str],
        expires_ms: int,
        *,
        single_active_consumer: bool = False,
    ) -> Topology:
        """One service instance's event queue, exclusive to its connection.

        What it holds (heartbeats, snapshots, results for the services'
        bookkeeping) is re-sent or re-derived, so a copy lost with a dead
        node costs nothing; a durable queue on a dead node would instead
        stop its service from reconnecting until that node returned.
        ``expires_ms`` is unused (kept for callers).
        """
        return self.work_queue(
            self.subscriber_queue(service, instance_id),
            routing_keys,
            exchange=self.events_exchange,
            single_active_consumer=single_active_consumer,
            exclusive=True,
        )

    def cancels(self, queue: str) -> Topology:
        """Bind ``queue`` (a balancer's or an executor's own) to every cancel command."""
        return Topology(bindings=(BindingSpec(queue, self.events_exchange, RK_CANCEL),))

    def held_requests(self, queue: str) -> Topology:
        """Bind ``queue`` (an executor's own) to the balancers' questions of what it holds."""
        return Topology(bindings=(BindingSpec(queue, self.events_exchange, RK_HELD_REQUEST),))

    def transfer(self) -> Topology:
        return self.work_queue(self.chunks_queue, [RK_DATA_CHUNK]) + self.work_queue(
            self.data_requests_queue, [RK_DATA_REQUEST]
        )

    def record(self) -> Topology:
        """The task record's one durable queue: every lifecycle event, result and progress report.

        Declared by every service that publishes events, so none is lost
        while no monitor runs: they wait here until one consumes them.
        """
        return self.work_queue(
            self.record_queue,
            [RK_RECORD_EVENT, RK_ALL_RESULTS, RK_ALL_PROGRESS],
            exchange=self.events_exchange,
            queue_type="quorum",
        )

    def record_queries(self) -> Topology:
        return self.work_queue(self.record_queries_queue, [RK_RECORD_QUERY])

    def shared_queues(self) -> Topology:
        """Everything not tied to one node, client or instance (definitions.json)."""
        return (
            self.base()
            + self.submit()
            + self.placed()
            + self.transfer()
            + self.record()
            + self.record_queries()
        )


__all__ = [
    "DEFAULT_EXCHANGE",
    "HEADER_ATTEMPT",
    "HEADER_ERROR",
    "HEADER_KIND",
    "HEADER_REASON",
    "HEADER_SOURCE_QUEUE",
    "REASON_PERMANENT_ERROR",
    "REASON_RETRIES_EXHAUSTED",
    "REASON_UNEXPECTED_KIND",
    "REASON_UNROUTABLE",
    "RK_ALL_ALERTS",
    "RK_ALL_DATA_STORED",
    "RK_ALL_HEARTBEATS",
    "RK_ALL_PROGRESS",
    "RK_ALL_RESULTS",
    "RK_BACKLOG",
    "RK_BLOBS_REFERENCED",
    "RK_CANCEL",
    "RK_DATA_CHUNK",
    "RK_DATA_REQUEST",
    "RK_HELD_REQUEST",
    "RK_PARKED",
    "RK_PLACED",
    "RK_RECORD_EVENT",
    "RK_RECORD_QUERY",
    "RK_SNAPSHOT",
    "RK_SUBMIT",
    "RK_TENANTS",
    "BindingSpec",
    "ExchangeSpec",
    "ExchangeType",
    "Names",
    "QueueSpec",
    "QueueType",
    "RetryPolicy",
    "Topology",
    "rk_alert",
    "rk_cancel_answer",
    "rk_data_reply",
    "rk_data_stored",
    "rk_heartbeat",
    "rk_held_work",
    "rk_node",
    "rk_progress",
    "rk_record_reply",
    "rk_result",
    "rk_retrying",
]
