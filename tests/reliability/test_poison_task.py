"""A poison task: retried with growing delays, then a failed result and the dead-letter queue.

Ordinary tasks stream through the same executors meanwhile and all succeed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from boson.client import TaskHandle, TaskRequest
from boson_shared.bus.abc import Delivery
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.messages import TaskAssigned
from boson_shared.contract.topology import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
)
from tests.reliability.harness import (
    CountingClient,
    assert_exactly_once,
    gather_results,
    record,
    running_pipeline,
    wait_until,
)
from tests.support.cluster import ProcessCluster

HANDLERS = "tests.reliability.handlers"
MAX_RETRIES = 2
DELAYS_S = (0.2, 0.4)  # BOSON_RETRY_DELAYS_MS of the process cluster
OTHERS = 300


async def stream(client: CountingClient, handles: list[TaskHandle]) -> None:
    for batch in range(OTHERS // 20):
        handles.extend(
            await client.submit_many(
                [TaskRequest("noop", params={"echo": batch * 20 + i}) for i in range(20)]
            )
        )
        await asyncio.sleep(0.1)


async def read_dead_letters(cluster: ProcessCluster) -> list[Delivery]:
    transport = AmqpTransport(cluster.amqp_url, connection_name="boson-test-dlq")
    await transport.connect()
    got: list[Delivery] = []

    async def take(delivery: Delivery) -> None:
        got.append(delivery)
        await delivery.ack()

    try:
        subscription = await transport.consume(
            cluster.settings().names().dead_letter_queue, take, prefetch=100
        )
        await wait_until(lambda: bool(got), timeout=10)
        await asyncio.sleep(0.3)  # anything else that is there
        await subscription.cancel()
    finally:
        await transport.close()
    return got


@pytest.mark.broker
@pytest.mark.timeout(120)
async def test_poison_task_is_retried_then_dead_lettered(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    attempts_log = tmp_path / "poison-attempts.jsonl"
    async with running_pipeline(cluster, ["px-1", "px-2"], "--handler-module", HANDLERS) as client:
        handles: list[TaskHandle] = []
        producer = asyncio.create_task(stream(client, handles))
        poison = await client.submit(
            "poison-timed", params={"log": str(attempts_log)}, max_retries=MAX_RETRIES
        )
        failed = await poison.result(timeout=60)
        await producer
        results = await gather_results(client, handles, timeout=60)

        assert failed.status == "failed"
        assert failed.error is not None
        assert "always fails" in failed.error.message
        assert failed.attempts == MAX_RETRIES + 1
        runs = [json.loads(line) for line in attempts_log.read_text().splitlines()]
        assert [run["attempt"] for run in runs] == [1, 2, 3]
        gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(runs)]
        for gap, delay in zip(gaps, DELAYS_S, strict=True):
            assert gap >= delay * 0.95, (gaps, DELAYS_S)
        assert gaps[1] > gaps[0], gaps

        (dead,) = await read_dead_letters(cluster)
        codec = EnvelopeCodec.from_settings(cluster.settings())
        (message,) = codec.decode(dead.body)
        assert isinstance(message, TaskAssigned)
        assert message.task.task_id == poison.task_id
        assert dead.headers[HEADER_REASON] == "retries-exhausted"
        assert "always fails" in str(dead.headers[HEADER_ERROR])
        assert dead.headers[HEADER_ATTEMPT] == MAX_RETRIES + 1
        assert str(dead.headers[HEADER_SOURCE_QUEUE]).startswith(f"{cluster.namespace}.node.")

        # The other tasks flowed while the poison task was being retried.
        first, last = runs[0]["at"], runs[-1]["at"]
        meanwhile = sum(1 for tid in results if first <= client.shown_wall[tid] <= last)
        assert meanwhile > 0
        assert all(r.status == "succeeded" for r in results.values())
        delivery = assert_exactly_once(client, [*results, poison.task_id])
        record(
            "poison_task",
            delivery.as_dict()
            | {
                "poison_attempts": len(runs),
                "retry_gaps_s": [round(gap, 3) for gap in gaps],
                "configured_delays_s": list(DELAYS_S),
                "dead_lettered": 1,
                "dead_letter_reason": dead.headers[HEADER_REASON],
                "other_tasks": len(results),
                "other_tasks_done_during_retries": meanwhile,
                "failed_result_after_first_try_s": client.shown_wall[poison.task_id]
                - runs[0]["at"],
            },
        )
