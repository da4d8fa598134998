"""No input crashes a service or sneaks past its checks.

* Over 10,000 malformed envelopes (hypothesis-drawn, every family of
  ``tests/reliability/malformed.py``) are published through RabbitMQ to the
  queues the running services consume, with valid tasks interleaved. Every
  bad one lands in the dead-letter queue with a reason; every valid task
  completes; no process dies; no process's memory grows by more than 20%
  from a measurement after a 10 s warm-up.
* Changing any single byte of a valid envelope is detected (no broker).
* Values that pass the crypto but not the sense — negative sizes, absurd
  complexity, a huge count, a handler that does not exist, a parameter of
  the wrong type — end as a failed result or a typed error, never a crash
  or a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aio_pika
import pytest
from pydantic import ValidationError

from boson.client import Client, TaskHandle, TaskRequest
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    Alert,
    DataChunk,
    Message,
    NodeHeartbeat,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskSubmitted,
)
from boson_shared.contract.topology import DEFAULT_EXCHANGE, HEADER_REASON, HEADER_SOURCE_QUEUE
from boson_shared.errors import DecodeError, InvalidTaskError
from boson_shared.settings import BosonSettings
from tests.reliability.malformed import Bad, Sealer, draw, malformed
from tests.support.cluster import ROOT, ProcessCluster
from tests.support.waiting import health, rss, wait_for_nodes, wait_until

FUZZ_MAX_MESSAGE_BYTES = 64 * 1024
"""The services' limit in the fuzz run, so that oversize envelopes stay cheap."""
MALFORMED_PER_QUEUE = 2_100
"""Five queues: 10,500 malformed envelopes in all."""
WARM_UP_S = 10.0
MAX_RSS_GROWTH = 0.20
SERVICES = ("monitor", "scheduler", "balancer", "fuzz-node", "transfer")


def _task(**fields: Any) -> TaskSubmitted:
    values: dict[str, Any] = {"task_id": "t-sample", "handler": "noop", "reply_to": "c-sample"}
    return TaskSubmitted(**(values | fields))


# -- tampering: every byte of a sample -------------------------------------------


def _samples() -> dict[str, tuple[EnvelopeCodec, bytes]]:
    ring = Keyring({"k1": bytes(range(32))})
    aes = EnvelopeCodec(ring)
    chacha = EnvelopeCodec(ring, cipher="chacha20-poly1305")
    task = _task(params={"values": [1.5, 2.5], "label": "x"}, complexity=100, data=b"abc")
    big = _task(params={"values": list(range(2_000))})
    batch = [_task(task_id=f"t{i}") for i in range(3)]
    return {
        "single": (aes, aes.encode([task])),
        "chacha": (chacha, chacha.encode([task])),
        "compressed": (aes, aes.encode([big])),
        "batch": (aes, aes.encode(batch)),
    }


@pytest.mark.parametrize("sample", ["single", "chacha", "compressed", "batch"])
def test_changing_any_single_byte_is_detected(sample: str) -> None:
    codec, envelope = _samples()[sample]
    assert codec.decode(envelope)  # the untouched sample is fine
    if sample == "compressed":
        assert envelope[4] & 0x01, "the sample should be compressed"
    undetected = []
    for position in range(len(envelope)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(envelope)
            tampered[position] ^= mask
            try:
                codec.decode(bytes(tampered))
            except DecodeError:
                continue
            undetected.append((position, mask))
    assert undetected == [], f"{len(undetected)} single-byte changes decoded"


# -- out-of-range values ----------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"complexity": -1.0},
        {"data_size": -5.0},
        {"complexity": 1e16},
        {"complexity": float("nan")},
        {"timeout_s": 0},
        {"timeout_s": "soon"},
        {"max_retries": 1_000},
        {"handler": "no such handler!"},
        {"requests": {"cpu": -2.0}},
    ],
)
async def test_the_client_refuses_values_the_schema_refuses(fields: dict[str, Any]) -> None:
    client = Client(
        BosonSettings(), MemoryTransport(MemoryBroker()), EnvelopeCodec(Keyring.ephemeral())
    )
    with pytest.raises(InvalidTaskError) as caught:
        client.build_task(TaskRequest(**({"handler": "noop"} | fields)))
    assert isinstance(caught.value.__cause__, ValidationError)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--complexity", "-5"], "InvalidTaskError"),
        (["--data-size", "-1"], "InvalidTaskError"),
        (["--count", "1000000000000"], "ConfigError"),
        (["--count", "0"], "ConfigError"),
    ],
)
def test_boson_submit_reports_bad_values_in_one_line(args: list[str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    completed = subprocess.run(
        [sys.executable, "-m", "boson", "submit", "noop", *args, "--wait"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = completed.stderr.decode()
    assert completed.returncode == 2, stderr
    assert expected in stderr
    assert "Traceback" not in stderr


@pytest.mark.broker
@pytest.mark.timeout(180)
async def test_out_of_range_values_end_as_failed_results(cluster: ProcessCluster) -> None:
    for service in ("monitor", "scheduler", "balancer"):
        cluster.start(service)
    cluster.start("executor", "--node-id", "range-1", "--cpu", "500", "--memory", "500", name="n")
    await cluster.wait_healthy()
    client = await Client.connect(settings=cluster.settings())
    transport = AmqpTransport(cluster.amqp_url, connection_name="boson-test-range")
    await transport.connect()
    try:
        await wait_for_nodes(client, 1)
        cases: dict[str, tuple[TaskHandle, str]] = {}

        async def case(name: str, error: str, handler: str, **options: Any) -> None:
            cases[name] = (await client.submit(handler, max_retries=1, **options), error)

        await case("absurd complexity", "", "noop", complexity=1e15)
        await case("absurd explicit cpu", "", "noop", requests={"cpu": 1e15})
        await case("unknown handler", "UnknownHandlerError", "no_such_handler")
        await case("wrong param type", "InvalidTaskInputError", "forecast", params={"horizon": "x"})
        await case("wrong values type", "InvalidTaskInputError", "stats", params={"values": "oops"})
        await case("huge horizon", "InvalidTaskInputError", "forecast", params={"horizon": 10**12})
        await case("huge burn", "InvalidTaskInputError", "burn", params={"seconds": 1e300})
        await case("bool for a number", "InvalidTaskInputError", "burn", params={"seconds": True})
        await case(
            "nested junk",
            "InvalidTaskInputError",
            "stats",
            params={"values": [[1, 2], [3]], "quantiles": {"a": 1}},
        )
        async with asyncio.timeout(90):
            results = {name: await handle.result() for name, (handle, _) in cases.items()}
        for name, result in results.items():
            assert result.status == "failed", (name, result)
            assert result.error is not None
            expected = cases[name][1]
            if expected:
                # Process-mode handlers report the input error from the worker side.
                allowed = {expected, expected.replace("InvalidTaskInput", "InvalidInputFromWorker")}
                assert result.error.error_type in allowed, (name, result.error)
            assert result.error.message, name
        # The absurd ones never reach a node: the scheduler says why at once.
        assert results["absurd complexity"].attempts == 0

        # Values pydantic refuses, forced onto the wire past the client's
        # checks, are dead-lettered by the scheduler with the reason.
        codec = EnvelopeCodec.from_settings(cluster.settings())
        names = cluster.settings().names()
        good = _task(reply_to=client.client_id).model_dump(exclude={"kind"})
        forced = [
            codec.encode_raw("task.submitted", [good | {"complexity": -1.0}]),
            codec.encode_raw("task.submitted", [good | {"data_size": -1e9}]),
            codec.encode_raw("task.submitted", [good | {"max_retries": 10**9}]),
            codec.encode_raw("task.submitted", [good | {"timeout_s": "never"}]),
            codec.encode_raw("task.nonexistent", [good]),
        ]
        for body in forced:
            await transport.publish(DEFAULT_EXCHANGE, names.submit_queue, body)
        # The failed tasks above were dead-lettered too (permanent-error).
        expected_dead = len(forced) + sum(1 for _, error in cases.values() if error)

        async def all_dead() -> bool:
            return await transport.queue_depth(names.dead_letter_queue) >= expected_dead

        await wait_until(all_dead, timeout=30, step=0.2)
        dead = await _dead_letters(cluster.amqp_url, names.dead_letter_queue, expected_dead)
        from_submit = [h for h in dead if h[HEADER_SOURCE_QUEUE] == names.submit_queue]
        assert sorted(str(h[HEADER_REASON]) for h in from_submit) == [
            "schema",
            "schema",
            "schema",
            "schema",
            "unknown-kind",
        ]
        await asyncio.sleep(0.5)
        assert await transport.queue_depth(names.dead_letter_queue) == 0
        for name in cluster.processes:
            assert cluster.processes[name].process.poll() is None, cluster.log(name)[-2000:]
    finally:
        await transport.close()
        await client.close()


# -- the broker fuzz --------------------------------------------------------------


async def _dead_letters(url: str, queue: str, count: int, timeout: float = 60) -> list[Any]:
    """Consume ``count`` messages from the dead-letter queue; their headers."""
    connection = await aio_pika.connect(url)
    headers: list[Any] = []
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2_000)
        dlq = await channel.declare_queue(queue, passive=True)
        async with asyncio.timeout(timeout), dlq.iterator(no_ack=True) as messages:
            async for message in messages:
                headers.append(dict(message.headers))
                if len(headers) >= count:
                    break
    finally:
        await connection.close()
    return headers


async def _publish_all(transport: AmqpTransport, queue_bodies: Sequence[tuple[str, bytes]]) -> None:
    """Publish with pipelined confirms, a window at a time."""
    window = 500
    for start in range(0, len(queue_bodies), window):
        await asyncio.gather(
            *(
                transport.publish(DEFAULT_EXCHANGE, queue, body)
                for queue, body in queue_bodies[start : start + window]
            )
        )


@pytest.mark.broker
@pytest.mark.timeout(300)
async def test_ten_thousand_malformed_envelopes_through_the_broker(
    cluster: ProcessCluster,
) -> None:
    cluster.extra_env["BOSON_MAX_MESSAGE_BYTES"] = str(FUZZ_MAX_MESSAGE_BYTES)
    for service in ("monitor", "scheduler", "balancer", "transfer"):
        cluster.start(service)
    cluster.start("executor", "--node-id", "fuzz-1", "--slots", "16", name="fuzz-node")
    await cluster.wait_healthy()
    settings = cluster.settings(max_message_bytes=FUZZ_MAX_MESSAGE_BYTES)
    names = settings.names()
    client = await Client.connect(settings=settings)
    transport = AmqpTransport(cluster.amqp_url, connection_name="boson-test-fuzz")
    await transport.connect()
    submitting = True
    handles: list[TaskHandle] = []

    async def submit_valid() -> None:
        # Valid tasks all through the warm-up and the fuzz, 50 a second.
        number = 0
        while submitting:
            handles.append(await client.submit("noop", params={"echo": number}))
            number += 1
            await asyncio.sleep(0.02)

    try:
        await wait_for_nodes(client, 1)
        monitor_instance = (await health(cluster, "monitor"))["instance"]
        keyring = Keyring.parse(cluster.keys)
        codec = EnvelopeCodec(keyring, max_message_bytes=FUZZ_MAX_MESSAGE_BYTES)
        sealer = Sealer.active(keyring)
        wrong_kind = codec.encode([Alert(reason="anomaly", severity="info", detail="fuzz")])
        task = _task(reply_to=client.client_id)
        demand = ResourceVector(cpu=1)
        samples: dict[str, list[Message]] = {
            names.submit_queue: [task],
            names.placed_queue: [TaskPlaced(task=task, demand=demand, node_id=None, strategy="x")],
            names.node_queue("fuzz-1"): [TaskAssigned(task=task, demand=demand, node_id="fuzz-1")],
            names.subscriber_queue("monitor", str(monitor_instance)): [
                NodeHeartbeat(
                    node_id="ghost",
                    seq=1,
                    started_at=0,
                    capacity=demand,
                    allocated=demand,
                    slots=1,
                    running=0,
                    free_slots=1,
                    measured_cpu=0,
                    measured_memory=0,
                )
            ],
            names.chunks_queue: [
                DataChunk(
                    upload_id="u1",
                    digest="0" * 64,
                    index=0,
                    total_chunks=1,
                    total_size=3,
                    offset=0,
                    data=b"abc",
                )
            ],
        }
        corpus: list[tuple[str, Bad]] = []
        for queue, messages in samples.items():
            strategy = malformed(
                sealer,
                kind=messages[0].kind,
                sample=codec.encode(messages),
                wrong_kind=wrong_kind,
                max_message_bytes=FUZZ_MAX_MESSAGE_BYTES,
            )
            corpus += [(queue, bad) for bad in draw(strategy, MALFORMED_PER_QUEUE)]
        # Interleave the queues, so that every service is under fire at once.
        corpus = [
            corpus[i]
            for q in range(MALFORMED_PER_QUEUE)
            for i in range(q, len(corpus), MALFORMED_PER_QUEUE)
        ]
        for _, bad in corpus[:2000]:  # every envelope really is bad for its queue's codec
            try:
                decoded = codec.decode(bad.body)
            except DecodeError:
                continue
            assert bad.category == "unexpected-kind", bad.category
            assert not isinstance(decoded[0], TaskSubmitted)

        submitter = asyncio.create_task(submit_valid())
        await asyncio.sleep(WARM_UP_S)
        rss_start = rss(cluster, SERVICES)
        started = time.monotonic()
        await _publish_all(transport, [(queue, bad.body) for queue, bad in corpus])
        published_s = time.monotonic() - started
        submitting = False
        await submitter

        async with asyncio.timeout(120):
            results = await asyncio.gather(*(handle.result() for handle in handles))
        assert all(result.status == "succeeded" for result in results)
        assert [r.output for r in results] == list(range(len(handles)))

        async def dead_letter_depth() -> bool:
            return await transport.queue_depth(names.dead_letter_queue) >= len(corpus)

        await wait_until(dead_letter_depth, timeout=120, step=0.5)
        drained_s = time.monotonic() - started
        await asyncio.sleep(1.0)  # nothing more arrives: not one valid task dead-lettered
        assert await transport.queue_depth(names.dead_letter_queue) == len(corpus)
        rss_end = rss(cluster, SERVICES)

        dead = await _dead_letters(cluster.amqp_url, names.dead_letter_queue, len(corpus))
        assert all(HEADER_REASON in h and h[HEADER_REASON] for h in dead)
        per_queue = Counter(str(h[HEADER_SOURCE_QUEUE]) for h in dead)
        assert per_queue == Counter({queue: MALFORMED_PER_QUEUE for queue in samples})
        reasons = Counter(str(h[HEADER_REASON]) for h in dead)
        for process in cluster.processes.values():
            assert process.process.poll() is None, f"{process.name} died"

        # A service counts a dead letter once the broker has confirmed it,
        # which can come after the letter is already in the queue.
        async def counted() -> int:
            return sum([int((await health(cluster, name))["dead_lettered"]) for name in SERVICES])

        async def all_counted() -> bool:
            return await counted() >= len(corpus)

        with contextlib.suppress(TimeoutError):
            await wait_until(all_counted, timeout=30, step=0.5)
        per_service = {name: (await health(cluster, name)) for name in SERVICES}
        assert await counted() == len(corpus), {
            n: (h["dead_lettered"], h.get("dead_letter_reasons")) for n, h in per_service.items()
        }
        growth = {name: rss_end[name] / rss_start[name] - 1 for name in SERVICES}
        print(
            f"\nFUZZ malformed={len(corpus)} valid={len(handles)} "
            f"published_in={published_s:.1f}s dead_lettered_in={drained_s:.1f}s\n"
            f"FUZZ categories={dict(Counter(bad.category for _, bad in corpus))}\n"
            f"FUZZ reasons={dict(reasons)}\n"
            f"FUZZ rss_mib_start={ {k: round(v / 2**20, 1) for k, v in rss_start.items()} } "
            f"rss_growth={ {k: f'{v:+.1%}' for k, v in growth.items()} }"
        )
        assert all(value <= MAX_RSS_GROWTH for value in growth.values()), growth
    finally:
        submitting = False
        await transport.close()
        await client.close()
    cluster.stop_all()
    for name, process in cluster.processes.items():
        assert process.process.returncode == 0, cluster.log(name)[-2000:]
        assert "Traceback" not in cluster.log(name), name
