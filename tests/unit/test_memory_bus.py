"""In-memory bus details the conformance suite does not pin down, plus the
pure helpers both transports share (topic matching, headers, URL masking,
the transport factory). No broker needed."""

from __future__ import annotations

import asyncio

import pytest

from boson_shared.bus.abc import Delivery, Transport
from boson_shared.bus.amqp import AmqpTransport, mask_url
from boson_shared.bus.factory import transport_from_url
from boson_shared.bus.headers import incoming, outgoing, to_amqp
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.bus.topic import topic_matches
from boson_shared.contract.topology import Names, RetryPolicy
from boson_shared.errors import BrokerUnavailableError, ConfigError


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("*", "", True),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#", "ab", False),
        ("#.a", "a", True),
        ("#.a", "b.a", True),
        ("#.a", "b.a.c", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.x.y.c", False),
        ("#.#", "a", True),
        ("#.*.#", "", True),
        ("*.*", "a", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
        ("heartbeat.#", "heartbeat.node-1", True),
        ("result.#", "results.x", False),
    ],
)
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_topic_matching_with_many_hashes_is_not_exponential() -> None:
    pattern = ".".join(["#"] * 30 + ["z"])
    assert not topic_matches(pattern, ".".join(["a"] * 40))


def test_headers_round_trip_through_amqp_types() -> None:
    checked = outgoing({"f": 0.1, "b": b"\x01", "n": None, "i": 7, "t": True})
    assert checked["f"] != 0.1  # single precision, as RabbitMQ carries it
    assert abs(float(checked["f"] or 0) - 0.1) < 1e-7
    table = to_amqp(checked)
    assert table["b"] == bytearray(b"\x01")
    assert incoming(table) == checked
    assert incoming({"x-death": [{"count": 1}], "x-first-death-reason": "expired"}) == {
        "x-first-death-reason": "expired"
    }


def test_headers_refuse_what_amqp_cannot_carry() -> None:
    with pytest.raises(TypeError):
        outgoing({"d": {"nested": 1}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="64 bits"):
        outgoing({"big": -(2**63) - 1})
    with pytest.raises(ValueError, match="128 bytes"):
        outgoing({"k" * 129: 1})


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://user:s3cret@host:5672/vh", "amqp://user:****@host:5672/vh"),
        ("amqps://host/", "amqps://host/"),
        ("amqp://user:p%40ss@host/", "amqp://user:****@host/"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_factory_picks_the_transport() -> None:
    broker = MemoryBroker()
    memory = transport_from_url("memory://", memory_broker=broker)
    assert isinstance(memory, MemoryTransport)
    assert memory.broker is broker
    assert isinstance(transport_from_url(None), MemoryTransport)
    assert isinstance(transport_from_url("amqp://guest:guest@localhost/"), AmqpTransport)
    with pytest.raises(ConfigError) as caught:
        transport_from_url("redis://user:hunter2@host/")
    assert "hunter2" not in str(caught.value)


async def test_amqp_connect_failure_hides_the_password() -> None:
    transport = AmqpTransport("amqp://user:hunter2@127.0.0.1:1/", op_timeout=2)
    with pytest.raises(BrokerUnavailableError) as caught:
        await transport.connect()
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(transport)
    assert not transport.is_connected


async def test_memory_transport_requires_connect() -> None:
    transport: Transport = MemoryTransport(MemoryBroker())
    with pytest.raises(BrokerUnavailableError):
        await transport.publish("", "q", b"")
    await transport.connect()
    await transport.close()
    with pytest.raises(BrokerUnavailableError):
        await transport.queue_depth("q")


async def test_requeued_messages_go_back_to_the_head_in_order() -> None:
    broker = MemoryBroker()
    transport = MemoryTransport(broker)
    await transport.connect()
    names = Names("u", retry=RetryPolicy(delays_ms=(50,), max_attempts=2))
    await transport.declare(names.submit())
    for i in range(3):
        await transport.publish(names.work_exchange, "task.submit", f"{i}".encode())
    received: asyncio.Queue[Delivery] = asyncio.Queue()

    async def hold(delivery: Delivery) -> None:
        await received.put(delivery)

    subscription = await transport.consume(names.submit_queue, hold, prefetch=2)
    first = [await received.get(), await received.get()]
    await subscription.cancel()
    await transport.publish(names.work_exchange, "task.submit", b"3")
    await transport.drop()  # the cancelled consumer is not resumed
    assert await transport.queue_depth(names.submit_queue) == 4
    assert all(d.settled is False for d in first)

    order: list[bytes] = []
    all_four = asyncio.Event()

    async def record(delivery: Delivery) -> None:
        order.append(delivery.body)
        await delivery.ack()
        if len(order) == 4:
            all_four.set()

    await transport.consume(names.submit_queue, record, prefetch=1)
    async with asyncio.timeout(2):
        await all_four.wait()
    assert order == [b"0", b"1", b"2", b"3"]
    await transport.close()
    broker.close()


async def test_ttl_expiry_is_timer_driven_and_cancelled_on_close() -> None:
    broker = MemoryBroker()
    transport = MemoryTransport(broker)
    await transport.connect()
    names = Names("u", retry=RetryPolicy(delays_ms=(30,), max_attempts=2))
    await transport.declare(names.submit())
    retry = names.retry_tier(30)
    for i in range(3):
        await transport.publish(retry, names.submit_queue, f"{i}".encode())
    assert await transport.queue_depth(retry) == 3
    await asyncio.sleep(0.08)
    assert await transport.queue_depth(retry) == 0
    assert await transport.queue_depth(names.submit_queue) == 3
    await transport.publish(retry, names.submit_queue, b"pending")
    await transport.close()
    broker.close()  # cancels the pending expiry timer


async def test_memory_publish_is_fast() -> None:
    broker = MemoryBroker()
    transport = MemoryTransport(broker)
    await transport.connect()
    names = Names("u")
    await transport.declare(names.submit())
    count = 0
    done = asyncio.Event()

    async def ack(delivery: Delivery) -> None:
        nonlocal count
        await delivery.ack()
        count += 1
        if count == 20_000:
            done.set()

    await transport.consume(names.submit_queue, ack, prefetch=100)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(20_000):
        await transport.publish(names.work_exchange, "task.submit", b"x")
    async with asyncio.timeout(10):
        await done.wait()
    assert loop.time() - started < 5
    await transport.close()
    broker.close()
