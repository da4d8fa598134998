"""The consume loop on the in-memory broker: the rules the runtime promises.

What every transport must show (redelivery, retry timing, dead-lettering,
reconnects, drain) is in ``tests/integration/test_runtime_conformance.py``;
here are the loop's own decisions, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from boson_shared.bus.abc import Delivery, Headers
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import Alert, Message, TaskSubmitted
from boson_shared.contract.topology import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_KIND,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
    Names,
    RetryPolicy,
    rk_alert,
)
from boson_shared.errors import BrokerUnavailableError, PermanentTaskError
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit, delivery_attempt
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import BatchingPublisher, Route
from tests.support.failing_publish import FailsFirstPublish

WAIT = 5.0
codec = EnvelopeCodec(Keyring.ephemeral())


def task(number: int, **fields: Any) -> TaskSubmitted:
    return TaskSubmitted(
        message_id=f"t{number}", task_id=f"t{number}", handler="noop", reply_to="c", **fields
    )


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - state owned by the loop
            await asyncio.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.items: asyncio.Queue[Delivery] = asyncio.Queue()

    async def __call__(self, delivery: Delivery) -> None:
        await delivery.ack()
        await self.items.put(delivery)

    async def get(self) -> Delivery:
        async with asyncio.timeout(WAIT):
            return await self.items.get()

    async def nothing_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.items.get()
        except TimeoutError:
            return True
        return False


@dataclass
class Rig:
    transport: MemoryTransport
    names: Names
    queue: str
    publisher: BatchingPublisher
    dead: Inbox
    out: Inbox
    seen: SeenIds = field(default_factory=lambda: SeenIds(1000))
    loops: list[ConsumeLoop[TaskSubmitted]] = field(default_factory=list)

    def alert_route(self) -> Route:
        return Route(self.names.events_exchange, rk_alert("backlog"))

    def done(self, message: TaskSubmitted) -> Emit:
        return Emit(
            self.alert_route(),
            Alert(
                message_id=f"{message.message_id}.done",
                reason="backlog",
                severity="info",
                detail=message.task_id,
            ),
        )

    async def start(self, spec: ConsumerSpec[TaskSubmitted]) -> ConsumeLoop[TaskSubmitted]:
        loop = ConsumeLoop(
            spec,
            transport=self.transport,
            codec=codec,
            publisher=self.publisher,
            names=self.names,
            seen=self.seen,
        )
        await loop.start()
        self.loops.append(loop)
        return loop

    async def send(self, *messages: Message, headers: Headers | None = None) -> None:
        await self.transport.publish(
            self.names.work_exchange, "job", codec.encode(list(messages)), headers=headers
        )

    async def outputs(self, count: int) -> list[str]:
        return sorted(
            [cast(Alert, codec.decode((await self.out.get()).body)[0]).detail for _ in range(count)]
        )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    broker = MemoryBroker()
    transport = MemoryTransport(broker)
    await transport.connect()
    names = Names("unit", retry=RetryPolicy(delays_ms=(50, 100), max_attempts=3))
    queue = "unit.q"
    await transport.declare(names.work_queue(queue, ["job"]))
    await transport.declare(
        names.work_queue("unit.out", [rk_alert("#")], exchange=names.events_exchange)
    )
    dead, out = Inbox(), Inbox()
    await transport.consume(names.dead_letter_queue, dead, prefetch=0)
    await transport.consume("unit.out", out, prefetch=0)
    rig = Rig(transport, names, queue, BatchingPublisher(transport, codec), dead, out)
    try:
        yield rig
    finally:
        for loop in rig.loops:
            await loop.stop()
            await loop.drain(1.0)
        await transport.close()
        broker.close()


async def test_handled_effects_are_published_and_the_delivery_acked(rig: Rig) -> None:
    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1), task(2))
    assert await rig.outputs(2) == ["t1", "t2"]
    await eventually(lambda: loop.stats.handled == 2)
    assert loop.stats.deliveries == 1
    assert await rig.transport.queue_depth(rig.queue) == 0


async def test_a_kind_the_queue_does_not_take_is_dead_lettered_at_once(rig: Rig) -> None:
    handled: list[TaskSubmitted] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        handled.append(message)
        return []

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    stray = Alert(reason="backlog", severity="info", detail="not a task")
    await rig.send(stray)
    dead = await rig.dead.get()
    assert dead.headers[HEADER_REASON] == "unexpected-kind"
    assert dead.headers[HEADER_KIND] == "alert"
    assert dead.headers[HEADER_SOURCE_QUEUE] == rig.queue
    assert "does not take 'alert'" in str(dead.headers[HEADER_ERROR])
    assert codec.decode(dead.body)[0].message_id == stray.message_id
    await rig.send(task(1))
    await eventually(lambda: bool(handled))
    assert loop.stats.dead_letter_reasons == {"unexpected-kind": 1}


async def test_large_envelopes_can_be_decoded_off_the_event_loop(rig: Rig) -> None:
    loop_thread = threading.get_ident()
    decoded_in: list[tuple[int, bool]] = []

    class SpyCodec(EnvelopeCodec):
        def decode(self, data: bytes) -> list[Message]:
            decoded_in.append((len(data), threading.get_ident() == loop_thread))
            return super().decode(data)

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        return [rig.done(message)]

    spec = ConsumerSpec(rig.queue, (TaskSubmitted,), handle, decode_in_thread_above_bytes=600)
    loop = ConsumeLoop(
        spec,
        transport=rig.transport,
        codec=SpyCodec(Keyring.ephemeral()),
        publisher=rig.publisher,
        names=rig.names,
        seen=rig.seen,
    )
    await loop.start()
    rig.loops.append(loop)
    spy = cast(EnvelopeCodec, loop._codec)
    small, large = task(1), task(2, data=os.urandom(2000))
    for message in (small, large):
        await rig.transport.publish(rig.names.work_exchange, "job", spy.encode([message]))
    assert await rig.outputs(2) == ["t1", "t2"]
    sizes = {len(spy.encode([m])) for m in (small, large)}
    assert min(sizes) <= 600 < max(sizes)
    assert sorted(decoded_in) == [(min(sizes), True), (max(sizes), False)]
    # Bytes that are no envelope are still dead-lettered when decoded in a thread.
    await rig.transport.publish(rig.names.work_exchange, "job", b"BSN" + b"\xff" * 1000)
    dead = await rig.dead.get()
    assert dead.headers[HEADER_SOURCE_QUEUE] == rig.queue
    await eventually(lambda: loop.stats.dead_lettered == 1)


async def test_a_permanent_error_skips_the_retries(rig: Rig) -> None:
    exhausted: list[tuple[str, str, int]] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        raise PermanentTaskError("cannot ever work")

    async def on_exhausted(
        message: TaskSubmitted, error: BaseException, attempt: int
    ) -> Sequence[Emit]:
        exhausted.append((message.task_id, type(error).__name__, attempt))
        return [rig.done(message)]

    loop = await rig.start(
        ConsumerSpec(rig.queue, (TaskSubmitted,), handle, on_exhausted=on_exhausted)
    )
    await rig.send(task(1))
    dead = await rig.dead.get()
    assert dead.headers[HEADER_REASON] == "permanent-error"
    assert dead.headers[HEADER_ATTEMPT] == 1
    assert exhausted == [("t1", "PermanentTaskError", 1)]
    assert await rig.outputs(1) == ["t1"]  # the hook's effect (e.g. a failed result)
    assert loop.stats.retried == 0


async def test_a_failure_reported_to_its_owner_is_dead_lettered_without_a_warning(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        raise PermanentTaskError("the user's handler raised")

    async def on_exhausted(
        message: TaskSubmitted, error: BaseException, attempt: int
    ) -> Sequence[Emit]:
        return [rig.done(message)]  # e.g. the failed result its submitter reads

    await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle, on_exhausted=on_exhausted))
    with caplog.at_level(logging.INFO, logger="boson_shared.runtime.consumer"):
        await rig.send(task(1))
        await rig.dead.get()
    dead_lettered = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert [r.levelno for r in dead_lettered] == [logging.INFO]


async def test_the_submitter_hears_of_each_retry_as_it_happens(rig: Rig) -> None:
    told: list[tuple[str, int, int]] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        raise RuntimeError("flaky")

    async def on_retry(
        message: TaskSubmitted, error: BaseException, attempt: int, delay_ms: int
    ) -> Sequence[Emit]:
        told.append((message.task_id, attempt, delay_ms))
        return [rig.done(message)]

    spec = ConsumerSpec(
        rig.queue, (TaskSubmitted,), handle, on_retry=on_retry, max_attempts=lambda m: 2
    )
    await rig.start(spec)
    await rig.send(task(1))
    await rig.dead.get()
    assert told == [("t1", 1, 50)]
    assert await rig.outputs(1) == ["t1"]


async def test_a_dead_lettered_envelope_keeps_its_message_id(rig: Rig) -> None:
    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        raise AssertionError("not reached")

    await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    wrong = [rig.done(task(1)).message, rig.done(task(2)).message]
    await rig.transport.publish(
        rig.names.work_exchange, "job", codec.encode(wrong), message_id=wrong[0].message_id
    )
    dead = await rig.dead.get()
    assert dead.headers[HEADER_REASON] == "unexpected-kind"
    assert dead.message_id == "t1.done"  # in plaintext: its sender can recognise it


async def test_retries_count_attempts_and_respect_a_per_message_limit(rig: Rig) -> None:
    attempts: list[tuple[str, int]] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        attempts.append((message.task_id, delivery_attempt.get()))
        raise RuntimeError("flaky")

    spec = ConsumerSpec(
        rig.queue, (TaskSubmitted,), handle, max_attempts=lambda m: m.max_retries + 1
    )
    loop = await rig.start(spec)
    await rig.send(task(1, max_retries=1))
    dead = await rig.dead.get()
    assert dead.headers[HEADER_REASON] == "retries-exhausted"
    assert dead.headers[HEADER_ATTEMPT] == 2
    assert dead.headers[HEADER_ERROR] == "RuntimeError: flaky"
    assert attempts == [("t1", 1), ("t1", 2)]
    assert loop.stats.retried == 1


async def test_a_handler_that_recovers_on_retry_is_handled_once(rig: Rig) -> None:
    calls = 0

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("once")
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1))
    assert await rig.outputs(1) == ["t1"]
    assert calls == 2
    await eventually(lambda: loop.stats.handled == 1)
    assert (loop.stats.retried, loop.stats.handled, loop.stats.dead_lettered) == (1, 1, 0)
    assert await rig.dead.nothing_within(0.2)


async def test_repeated_ids_are_acked_and_dropped(rig: Rig) -> None:
    calls: list[str] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        calls.append(message.task_id)
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1))
    assert await rig.outputs(1) == ["t1"]
    await rig.send(task(1), task(2))  # one old, one new in one envelope
    assert await rig.outputs(1) == ["t2"]
    await rig.send(task(2))
    await asyncio.sleep(0.1)
    assert calls == ["t1", "t2"]
    assert loop.stats.duplicates == 2
    assert await rig.out.nothing_within(0.1)
    assert await rig.transport.queue_depth(rig.queue) == 0


async def test_a_batch_handler_takes_the_envelope_and_falls_back_to_items(rig: Rig) -> None:
    batches: list[list[str]] = []
    singles: list[str] = []
    fail_batch = False

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        singles.append(message.task_id)
        return [rig.done(message)]

    async def handle_batch(messages: Sequence[TaskSubmitted]) -> Sequence[Emit]:
        batches.append([m.task_id for m in messages])
        if fail_batch:
            raise RuntimeError("batch broke")
        return [rig.done(m) for m in messages]

    spec = ConsumerSpec(rig.queue, (TaskSubmitted,), handle, batch_handler=handle_batch)
    await rig.start(spec)
    await rig.send(task(1), task(2), task(3))
    assert await rig.outputs(3) == ["t1", "t2", "t3"]
    assert (batches, singles) == ([["t1", "t2", "t3"]], [])
    await rig.send(task(4))  # alone: the item handler
    assert await rig.outputs(1) == ["t4"]
    assert singles == ["t4"]
    fail_batch = True
    await rig.send(task(5), task(6))
    assert await rig.outputs(2) == ["t5", "t6"]
    assert singles == ["t4", "t5", "t6"]


async def test_an_effect_that_cannot_be_published_hands_the_delivery_back(rig: Rig) -> None:
    calls: list[str] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        calls.append(message.task_id)
        return [rig.done(message)]

    events = rig.names.events_exchange
    flaky = FailsFirstPublish(
        rig.transport, lambda exchange, _: exchange == events, ConnectionError("broker went away")
    )
    rig.publisher = BatchingPublisher(flaky, codec)  # type: ignore[arg-type]
    await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1))
    # Not lost and not taken for a duplicate: the redelivery is handled again.
    assert await rig.outputs(1) == ["t1"]
    assert calls == ["t1", "t1"]
    assert flaky.failed == 1


async def test_drain_hands_back_what_does_not_finish_in_time(rig: Rig) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        started.set()
        await release.wait()
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1))
    async with asyncio.timeout(WAIT):
        await started.wait()
    await loop.stop()
    assert loop.in_flight == 1
    await loop.drain(0.1)
    assert loop.in_flight == 0
    assert await rig.transport.queue_depth(rig.queue) == 1  # back in the queue
    assert "t1" not in rig.seen  # so a redelivery is handled, not dropped
    assert await rig.out.nothing_within(0.1)


async def test_drain_names_the_handlers_that_ignore_their_cancel(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        return []

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1))
    try:
        async with asyncio.timeout(WAIT):
            await started.wait()
        await loop.stop()
        async with asyncio.timeout(WAIT):
            await loop.drain(0.1, cancel_wait=0.2)
        assert loop.in_flight == 1
        assert (
            "unit.q: 1 handler(s) still running 0.2s after their cancel; "
            "the drain goes on without them"
        ) in caplog.text
    finally:
        release.set()


async def test_a_copy_redelivered_mid_handling_waits_for_the_original(rig: Rig) -> None:
    # The connection drops while the original is in its handler: the broker
    # redelivers a copy, and the original's late nack goes nowhere. Were the
    # copy acked as a repeat at once, the original's failure would lose it.
    gate = asyncio.Event()
    calls = 0
    succeeded: list[str] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
            raise BrokerUnavailableError("publish failed: connection lost")
        succeeded.append(message.task_id)
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1))
    await eventually(lambda: calls == 1)
    await rig.transport.drop()  # the copy arrives while the original still runs
    await eventually(lambda: loop.stats.deliveries == 2)
    gate.set()
    assert await rig.outputs(1) == ["t1"]
    assert succeeded == ["t1"]
    assert loop.stats.duplicates == 0


async def test_a_transient_error_hands_the_delivery_back_without_an_attempt(rig: Rig) -> None:
    calls = 0

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BrokerUnavailableError("the broker is away")
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1))
    assert await rig.outputs(1) == ["t1"]
    assert loop.stats.handed_back == 1
    assert loop.stats.retried == 0  # not a failure of the message: no retry tier
    assert loop.stats.dead_lettered == 0


@pytest.mark.parametrize("items_in_turn", [False, True])
async def test_items_overlap_unless_the_consumer_runs_them_in_turn(
    rig: Rig, items_in_turn: bool
) -> None:
    running = 0
    most = 0
    tasks_seen: set[asyncio.Task[Any] | None] = set()

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        tasks_seen.add(asyncio.current_task())
        await asyncio.sleep(0.01)
        running -= 1
        return [rig.done(message)]

    spec = ConsumerSpec(rig.queue, (TaskSubmitted,), handle, items_in_turn=items_in_turn)
    loop = await rig.start(spec)
    await rig.send(task(1), task(2), task(3))
    assert await rig.outputs(3) == ["t1", "t2", "t3"]
    await eventually(lambda: loop.stats.handled == 3)
    # In turn: one after another, in the delivery's own task; else a task each.
    assert most == (1 if items_in_turn else 3)
    assert len(tasks_seen) == (1 if items_in_turn else 3)


async def test_an_items_effects_do_not_wait_for_a_slow_sibling(rig: Rig) -> None:
    # An executor's envelope of tasks, one long: the quick one's result goes
    # out at once; the delivery is acked only when both are handled.
    release = asyncio.Event()

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        if message.task_id == "t2":
            await release.wait()
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1), task(2))
    assert await rig.outputs(1) == ["t1"]
    assert loop.stats.handled == 0
    assert loop.in_flight == 1  # not acked yet: t2 is still being handled
    release.set()
    assert await rig.outputs(1) == ["t2"]
    await eventually(lambda: loop.stats.handled == 2)
    assert await rig.transport.queue_depth(rig.queue) == 0


@pytest.mark.parametrize("dedup", [True, False])
async def test_a_repeated_id_reaches_the_handler_only_without_dedup(rig: Rig, dedup: bool) -> None:
    seen: list[str] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        seen.append(message.message_id)
        return []

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle, dedup=dedup))
    await rig.send(task(1))
    await rig.send(task(1))  # a replay: the same message id again
    await eventually(lambda: loop.stats.deliveries == 2 and loop.in_flight == 0)
    assert seen == (["t1"] if dedup else ["t1", "t1"])
    assert loop.stats.duplicates == (1 if dedup else 0)


async def test_an_envelope_repeating_an_id_is_handled_once_and_acked(rig: Rig) -> None:
    # A publisher queues a replayed message (an executor's result sent again
    # for a second dispatch) behind its first copy: one envelope carries both.
    # The second copy is a repeat of the first, not a wait on itself.
    calls: list[str] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        calls.append(message.task_id)
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(1), task(2), task(1))
    assert await rig.outputs(2) == ["t1", "t2"]
    await eventually(lambda: loop.in_flight == 0)
    assert sorted(calls) == ["t1", "t2"]
    assert loop.stats.duplicates == 1
    assert await rig.transport.queue_depth(rig.queue) == 0


async def test_deliveries_sharing_ids_in_another_order_never_wait_on_each_other(
    rig: Rig,
) -> None:
    # Copies of the same messages, batched differently by their publishers:
    # t3 is in its handler; [t1, t3, t2] must wait for it, and [t2, t1] comes
    # meanwhile. Neither may hold an id while it waits, or each waits for
    # the other for good.
    release = asyncio.Event()
    calls: list[str] = []

    async def handle(message: TaskSubmitted) -> Sequence[Emit]:
        calls.append(message.task_id)
        if message.task_id == "t3":
            await release.wait()
        return [rig.done(message)]

    loop = await rig.start(ConsumerSpec(rig.queue, (TaskSubmitted,), handle))
    await rig.send(task(3))
    await eventually(lambda: calls == ["t3"])
    await rig.send(task(1), task(3), task(2))
    await eventually(lambda: loop.stats.deliveries == 2)
    await rig.send(task(2), task(1))
    await eventually(lambda: loop.stats.deliveries == 3)
    release.set()
    assert await rig.outputs(3) == ["t1", "t2", "t3"]
    await eventually(lambda: loop.in_flight == 0)
    assert sorted(calls) == ["t1", "t2", "t3"]
    assert loop.stats.duplicates == 3
    assert await rig.transport.queue_depth(rig.queue) == 0
