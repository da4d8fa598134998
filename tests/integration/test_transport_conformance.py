"""One suite, both transports: what every service may rely on from the bus.

Each case runs against the in-memory broker and against the real RabbitMQ
(``transport_factory`` is parametrised; the AMQP run carries the ``broker``
mark). A connection lost from the server side is ``rabbitmqctl
close_connection`` on AMQP and ``drop()`` on the in-memory broker.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from boson_shared.bus.abc import Delivery, HeaderValue, Subscription
from boson_shared.bus.memory import MemoryTransport
from boson_shared.contract.topology import (
    BindingSpec,
    ExchangeSpec,
    Names,
    QueueSpec,
    RetryPolicy,
    Topology,
)
from boson_shared.errors import ConfigError, PublishNotConfirmedError, UnroutableError
from tests.conftest import TrackingTransport, TransportFactory, TransportKind

WAIT = 5.0
RETRY_MS = 200


class Inbox:
    """A handler that keeps deliveries unsettled until the test settles them."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self.unsettled: set[Delivery] = set()
        self.max_unsettled = 0

    async def __call__(self, delivery: Delivery) -> None:
        self.unsettled = {d for d in self.unsettled if not d.settled} | {delivery}
        self.max_unsettled = max(self.max_unsettled, len(self.unsettled))
        await self.deliveries.put(delivery)

    async def get(self, within: float = WAIT) -> Delivery:
        async with asyncio.timeout(within):
            return await self.deliveries.get()

    async def take(self, count: int, within: float = WAIT) -> list[Delivery]:
        return [await self.get(within) for _ in range(count)]

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await self.get(seconds)
        except TimeoutError:
            return True
        return False


def names(namespace: str) -> Names:
    return Names(namespace, retry=RetryPolicy(delays_ms=(RETRY_MS,), max_attempts=2))


async def work_setup(
    factory: TransportFactory, namespace: str, *, single_active_consumer: bool = False
) -> tuple[TrackingTransport, Names, str]:
    transport = await factory()
    n = names(namespace)
    queue = f"{namespace}.q"
    await transport.declare(
        n.work_queue(queue, ["job.#"], single_active_consumer=single_active_consumer)
    )
    return transport, n, queue


async def publish_n(transport: TrackingTransport, n: Names, count: int, key: str = "job.x") -> None:
    await asyncio.gather(
        *(transport.publish(n.work_exchange, key, f"m{i}".encode()) for i in range(count))
    )


async def wait_depth(transport: TrackingTransport, queue: str, expected: int) -> int:
    """Depth eventually equal to ``expected`` (a quorum queue counts lazily)."""
    depth = -1
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        depth = await transport.queue_depth(queue)
        if depth == expected:
            break
        await asyncio.sleep(0.05)
    return depth


async def lose_connection(
    transport: TrackingTransport, kind: TransportKind, namespace: str
) -> None:
    """The server closes our connection; the transport must recover by itself.

    On RabbitMQ this is ``rabbitmqctl close_connection`` aimed at this test's
    connections (named after the namespace), so that other sessions sharing
    the broker keep theirs — the same server-side close as
    ``close_all_connections``.
    """
    if isinstance(transport.inner, MemoryTransport):
        await transport.inner.drop()
        return
    ctl = kind.rabbitmqctl
    if ctl is None:
        pytest.fail("the AMQP run needs rabbitmqctl where the broker is to close connections")
    listing = await ctl("list_connections", "pid", "client_properties", "--no-table-headers", "-q")
    ours = [
        line.split()[0]
        for line in listing.splitlines()
        if f'{{"connection_name","boson-test {namespace}"}}' in line
    ]
    assert ours, "this test's connection is not listed"
    for pid in ours:
        await ctl("close_connection", pid, "test")


async def test_round_trip_keeps_body_headers_and_id(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    inbox = Inbox()
    await transport.consume(queue, inbox, prefetch=10)
    headers: dict[str, HeaderValue] = {
        "s": "text",
        "i": -(2**40),
        "f": 0.5,
        "b": True,
        "raw": b"\x00\xff",
        "none": None,
    }
    await transport.publish(
        n.work_exchange, "job.a", b"payload", headers=headers, message_id="id-1"
    )

    delivery = await inbox.get()
    assert delivery.body == b"payload"
    assert dict(delivery.headers) == headers
    assert delivery.message_id == "id-1"
    assert delivery.exchange == n.work_exchange
    assert delivery.routing_key == "job.a"
    assert not delivery.redelivered
    await delivery.ack()
    assert delivery.settled
    await delivery.ack()  # a second settle is a no-op
    assert await inbox.nothing_within(0.2)
    assert await wait_depth(transport, queue, 0) == 0


async def test_unsupported_header_is_refused(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, _ = await work_setup(transport_factory, namespace)
    with pytest.raises(TypeError):
        await transport.publish(n.work_exchange, "job.a", b"", headers={"l": [1]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="64 bits"):
        await transport.publish(n.work_exchange, "job.a", b"", headers={"big": 2**64})


TOPIC_CASES = {
    "a.*": {"a.b"},
    "a.#": {"a", "a.b", "a.b.c", "a..c"},
    "#": {"a", "a.b", "a.b.c", "x.b", "c", "a..c"},
    "*.b": {"a.b", "x.b"},
    "#.c": {"a.b.c", "c", "a..c"},
    "a.*.c": {"a.b.c", "a..c"},
    "c": {"c"},
}
TOPIC_KEYS = ["a", "a.b", "a.b.c", "x.b", "c", "a..c"]


async def test_topic_fanout_and_direct_routing(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport = await transport_factory()
    topic, fanout, direct = (f"{namespace}.{kind}" for kind in ("topic", "fanout", "direct"))
    queues = {pattern: f"{namespace}.topic{i}" for i, pattern in enumerate(TOPIC_CASES)}
    fan_queues = [f"{namespace}.fan{i}" for i in range(2)]
    direct_queue = f"{namespace}.direct"
    await transport.declare(
        Topology(
            exchanges=(
                ExchangeSpec(topic, "topic"),
                ExchangeSpec(fanout, "fanout"),
                ExchangeSpec(direct, "direct"),
            ),
            queues=tuple(
                QueueSpec(name, queue_type="classic")
                for name in [*queues.values(), *fan_queues, direct_queue]
            ),
            bindings=(
                *(BindingSpec(queue, topic, pattern) for pattern, queue in queues.items()),
                *(BindingSpec(queue, fanout, "ignored") for queue in fan_queues),
                BindingSpec(direct_queue, direct, "exact"),
            ),
        )
    )
    for key in TOPIC_KEYS:
        await transport.publish(topic, key, key.encode())
    for key in ("anything", "else"):
        await transport.publish(fanout, key, b"")
    for key in ("exact", "exact.not", "other"):
        await transport.publish(direct, key, b"")

    for pattern, queue in queues.items():
        assert await wait_depth(transport, queue, len(TOPIC_CASES[pattern])) == len(
            TOPIC_CASES[pattern]
        ), pattern
        inbox = Inbox()
        subscription = await transport.consume(queue, inbox, prefetch=0)
        got = {(await inbox.get()).routing_key for _ in TOPIC_CASES[pattern]}
        assert got == TOPIC_CASES[pattern], pattern
        await subscription.cancel()
    for queue in fan_queues:
        assert await wait_depth(transport, queue, 2) == 2
    assert await wait_depth(transport, direct_queue, 1) == 1


async def test_prefetch_bounds_unacked_deliveries(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    await publish_n(transport, n, 10)
    inbox = Inbox()
    await transport.consume(queue, inbox, prefetch=3)

    held = await inbox.take(3)
    assert await inbox.nothing_within(0.3)
    received = 3
    while held:
        await held.pop(0).ack()
        if received < 10:
            held.append(await inbox.get())
            received += 1
    assert inbox.max_unsettled == 3
    assert await wait_depth(transport, queue, 0) == 0


async def test_a_no_ack_consumer_takes_everything_settled_and_nothing_comes_back(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    await publish_n(transport, n, 10)
    inbox = Inbox()
    subscription = await transport.consume(queue, inbox, prefetch=3, no_ack=True)

    # Not bounded by the prefetch, settled from the start, and gone from the queue
    # though the handler settled none of them.
    held = await inbox.take(10)
    assert sorted(d.body for d in held) == sorted(f"m{i}".encode() for i in range(10))
    assert all(d.settled for d in held)
    await held[0].ack()  # does nothing, raises nothing
    await held[1].nack(requeue=True)  # nothing to put back
    assert await wait_depth(transport, queue, 0) == 0
    assert await inbox.nothing_within(0.3)

    # Gone with the consumer too: another consumer finds nothing to redeliver.
    await subscription.cancel()
    other = Inbox()
    await transport.consume(queue, other, prefetch=5)
    assert await other.nothing_within(0.3)
    await publish_n(transport, n, 1)
    fresh = await other.get()
    assert (fresh.body, fresh.settled, fresh.redelivered) == (b"m0", False, False)
    await fresh.ack()


async def test_nack_requeue_redelivers_and_reject_dead_letters(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    inbox = Inbox()
    await transport.consume(queue, inbox, prefetch=1)
    await transport.publish(n.work_exchange, "job.a", b"once", message_id="m-1")

    first = await inbox.get()
    await first.nack(requeue=True)
    again = await inbox.get()
    assert (again.body, again.message_id, again.redelivered) == (b"once", "m-1", True)
    await again.nack(requeue=False)

    dead_inbox = Inbox()
    await transport.consume(n.dead_letter_queue, dead_inbox, prefetch=1)
    dead = await dead_inbox.get()
    assert dead.body == b"once"
    assert dead.message_id == "m-1"
    assert dead.headers["x-first-death-reason"] == "rejected"
    assert dead.headers["x-first-death-queue"] == queue
    await dead.ack()
    assert await inbox.nothing_within(0.2)


async def test_handler_error_dead_letters(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)

    async def broken(delivery: Delivery) -> None:
        raise RuntimeError("handler bug")

    await transport.consume(queue, broken, prefetch=1)
    await transport.publish(n.work_exchange, "job.a", b"poison")
    dead_inbox = Inbox()
    await transport.consume(n.dead_letter_queue, dead_inbox, prefetch=1)
    assert (await dead_inbox.get()).body == b"poison"


async def test_closed_consumer_hands_unacked_to_another(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport_a, n, queue = await work_setup(transport_factory, namespace)
    transport_b = await transport_factory()
    inbox_a, inbox_b = Inbox(), Inbox()
    await transport_a.consume(queue, inbox_a, prefetch=5)
    await publish_n(transport_a, n, 3)
    held = await inbox_a.take(3)
    await transport_b.consume(queue, inbox_b, prefetch=5)
    assert await inbox_b.nothing_within(0.2)

    await transport_a.close()
    for delivery in held:
        await delivery.ack()  # too late: must not raise, must not settle anything
    redelivered = await inbox_b.take(3)
    assert sorted(d.body for d in redelivered) == [b"m0", b"m1", b"m2"]
    assert all(d.redelivered for d in redelivered)
    for delivery in redelivered:
        await delivery.ack()
    assert await wait_depth(transport_b, queue, 0) == 0


async def test_retry_tier_returns_message_after_its_delay(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    inbox = Inbox()
    await transport.consume(queue, inbox, prefetch=5)
    started = time.monotonic()
    await transport.publish(
        n.retry_tier(RETRY_MS),
        queue,
        b"later",
        headers={"x-boson-attempt": 2},
        message_id="r-1",
    )
    delivery = await inbox.get()
    elapsed = time.monotonic() - started
    assert elapsed >= RETRY_MS / 1000 * 0.9
    assert (delivery.body, delivery.message_id) == (b"later", "r-1")
    assert delivery.headers["x-boson-attempt"] == 2
    assert (delivery.exchange, delivery.routing_key) == (n.retry_return_exchange, queue)
    await delivery.ack()


async def test_a_retry_whose_queue_is_gone_falls_through_to_the_dead_letters(
    transport_factory: TransportFactory, namespace: str
) -> None:
    """Not kept in the tier for ever (quorum tiers dead-letter at least once)."""
    transport, n, _ = await work_setup(transport_factory, namespace)
    await transport.declare(n.base())
    inbox = Inbox()
    await transport.consume(n.dead_letter_queue, inbox, prefetch=5)
    await transport.publish(
        n.retry_tier(RETRY_MS), f"{namespace}.no-such-queue", b"orphan", message_id="r-2"
    )
    delivery = await inbox.get()
    assert (delivery.body, delivery.message_id) == (b"orphan", "r-2")
    assert delivery.routing_key == f"{namespace}.no-such-queue"
    await delivery.ack()


async def test_single_active_consumer_fails_over(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport_a, n, queue = await work_setup(
        transport_factory, namespace, single_active_consumer=True
    )
    transport_b = await transport_factory()
    inbox_a, inbox_b = Inbox(), Inbox()
    await transport_a.consume(queue, inbox_a, prefetch=10)
    await transport_b.consume(queue, inbox_b, prefetch=10)
    await publish_n(transport_a, n, 5)
    for delivery in await inbox_a.take(5):
        await delivery.ack()
    assert await inbox_b.nothing_within(0.3)

    await transport_a.close()
    await publish_n(transport_b, n, 3)
    taken = await inbox_b.take(3)
    assert sorted(d.body for d in taken) == [b"m0", b"m1", b"m2"]
    for delivery in taken:
        await delivery.ack()


async def test_declare_is_idempotent_and_refuses_a_conflict(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport = await transport_factory()
    n = names(namespace)
    shared = n.shared_queues() + n.node("n1", expires_ms=60_000) + n.client("c1", expires_ms=60_000)
    # A subscriber queue is its connection's own: only that one re-declares it.
    topology = shared + n.subscriber("monitor", "i1", ["heartbeat.#"], expires_ms=60_000)
    await transport.declare(topology)
    await transport.declare(topology)
    other = await transport_factory()
    await other.declare(shared)
    conflict = Topology(queues=(QueueSpec(n.submit_queue, queue_type="classic"),))
    with pytest.raises(ConfigError):
        await transport.declare(conflict)
    with pytest.raises(ConfigError):
        await transport.declare(Topology(exchanges=(ExchangeSpec(n.work_exchange, "fanout"),)))
    await transport.declare(topology)  # still usable after a refused declare


async def test_queue_depth_and_deletes(transport_factory: TransportFactory, namespace: str) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    assert await transport.queue_depth(queue) == 0
    await publish_n(transport, n, 4)
    assert await wait_depth(transport, queue, 4) == 4
    assert await transport.queue_depth(f"{namespace}.missing") == 0
    assert await transport.queue_depth_if_present(queue) == 4
    assert await transport.queue_depth_if_present(f"{namespace}.missing") is None
    assert await transport.queue_depth_if_present(queue) == 4  # after the miss, too

    await transport.delete_queue(queue)
    await transport.delete_queue(queue)  # gone already: a no-op
    assert await transport.queue_depth(queue) == 0
    assert await transport.queue_depth_if_present(queue) is None
    await transport.delete_exchange(n.work_exchange)
    await transport.delete_exchange(n.work_exchange)
    with pytest.raises(PublishNotConfirmedError):
        await transport.publish(n.work_exchange, "job.a", b"")


async def test_queue_consumers_counts_who_consumes(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, _n, queue = await work_setup(transport_factory, namespace)
    assert await transport.queue_consumers(queue) == 0
    assert await transport.queue_consumers(f"{namespace}.missing") == 0

    async def ack(delivery: Delivery) -> None:
        await delivery.ack()

    subscription = await transport.consume(queue, ack, prefetch=1)
    assert await transport.queue_consumers(queue) == 1
    await subscription.cancel()
    assert await transport.queue_consumers(queue) == 0


async def test_unroutable_and_missing_exchange(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    await transport.publish(n.work_exchange, "nobody.listens", b"dropped")
    with pytest.raises(UnroutableError):
        await transport.publish(n.work_exchange, "nobody.listens", b"", mandatory=True)
    with pytest.raises(PublishNotConfirmedError):
        await transport.publish(f"{namespace}.no-such-exchange", "job.a", b"")
    # The transport is still good for routable, mandatory work.
    await transport.publish(n.work_exchange, "job.a", b"kept", mandatory=True)
    assert await wait_depth(transport, queue, 1) == 1


async def test_concurrent_publishes_are_all_confirmed(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    await publish_n(transport, n, 300)
    assert await wait_depth(transport, queue, 300) == 300


async def test_consume_of_a_missing_queue_is_a_config_error(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport = await transport_factory()
    with pytest.raises(ConfigError):
        await transport.consume(f"{namespace}.missing", Inbox(), prefetch=1)


async def test_cancelled_subscription_keeps_its_held_deliveries(
    transport_factory: TransportFactory, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    inbox = Inbox()
    subscription: Subscription = await transport.consume(queue, inbox, prefetch=2)
    await publish_n(transport, n, 2)
    held = await inbox.take(2)
    await subscription.cancel()
    await publish_n(transport, n, 1)
    assert await inbox.nothing_within(0.3)
    for delivery in held:
        await delivery.ack()
    assert await wait_depth(transport, queue, 1) == 1
    assert subscription.queue == queue


async def test_lost_connection_recovers_and_consumers_resume(
    transport_factory: TransportFactory, transport_kind: TransportKind, namespace: str
) -> None:
    transport, n, queue = await work_setup(transport_factory, namespace)
    inbox = Inbox()
    await transport.consume(queue, inbox, prefetch=5)
    await transport.publish(n.work_exchange, "job.a", b"before")
    held = await inbox.get()

    await lose_connection(transport, transport_kind, namespace)
    await held.ack()  # on a dead channel: logged, not raised

    again = await inbox.get(within=15)
    assert (again.body, again.redelivered) == (b"before", True)
    await again.ack()
    async with asyncio.timeout(15):
        await transport.publish(n.work_exchange, "job.a", b"after")
    after = await inbox.get(within=15)
    assert after.body == b"after"
    await after.ack()
    assert transport.is_connected


async def test_watchers_hear_a_lost_connection_and_then_its_recovery_once_consuming(
    transport_factory: TransportFactory, transport_kind: TransportKind, namespace: str
) -> None:
    """What the monitor relies on to tell its own outage from the nodes' silence."""
    transport = await transport_factory()
    n = names(namespace)
    await transport.declare(n.subscriber("monitor", "i1", ["heartbeat.#"], expires_ms=60_000))
    inbox = Inbox()
    await transport.consume(n.subscriber_queue("monitor", "i1"), inbox, prefetch=5)
    heard: list[bool] = []
    back = asyncio.Event()

    def listen(connected: bool) -> None:
        heard.append(connected)
        if connected:
            back.set()

    transport.watch_connection(listen)

    await lose_connection(transport, transport_kind, namespace)
    async with asyncio.timeout(15):
        await back.wait()

    assert heard[0] is False
    # Told "back" once the exclusive queue is there again, bound and consumed.
    await transport.publish(n.events_exchange, "heartbeat.a", b"after")
    after = await inbox.get(within=5)
    assert after.body == b"after"
    await after.ack()


async def test_a_subscriber_queue_comes_back_bound_after_a_lost_connection(
    transport_factory: TransportFactory, transport_kind: TransportKind, namespace: str
) -> None:
    """An exclusive queue dies with its connection; the reconnect makes it again, bound.

    On a cluster the new connection may be on another node: the queue is
    declared there, and without its bindings it would receive nothing.
    """
    transport = await transport_factory()
    n = names(namespace)
    await transport.declare(n.subscriber("monitor", "i1", ["heartbeat.#"], expires_ms=60_000))
    queue = n.subscriber_queue("monitor", "i1")
    inbox = Inbox()
    await transport.consume(queue, inbox, prefetch=5)
    await transport.publish(n.events_exchange, "heartbeat.a", b"before")
    await (await inbox.get()).ack()

    await lose_connection(transport, transport_kind, namespace)

    async def delivered_after_reconnect() -> Delivery:
        while True:
            await transport.publish(n.events_exchange, "heartbeat.a", b"after")
            try:
                return await inbox.get(within=0.5)
            except TimeoutError:
                continue

    async with asyncio.timeout(15):
        after = await delivered_after_reconnect()
    assert after.body == b"after"
    await after.ack()
