"""A takeover census counts the work queued for a node beyond its executor's prefetch.

A real executor (one slot, a prefetch of two) on the in-memory broker and
on RabbitMQ: an earlier balancer dispatched four tasks to its node queue,
so two wait in the queue where the executor cannot see them. A balancer
that takes over asks what it holds: every task must be named by one of the
executor's answers, or have its result out before the complete answer —
else the new balancer would admit as if that work did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from boson_services.executor.app import ExecutorService
from boson_services.executor.settings import ExecutorSettings
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    HeldWork,
    HeldWorkRequest,
    Message,
    ResourceVector,
    TaskAssigned,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import RK_ALL_RESULTS, RK_HELD_REQUEST, rk_held_work, rk_node
from boson_shared.runtime.service import start_in_background, stop_all
from boson_shared.runtime.tap import Tap
from boson_shared.settings import BosonSettings
from tests.conftest import TransportFactory

HANDLERS = "tests.e2e.steering_handlers"
NODE = "census-node"
BALANCER = "bal-new"
TASKS = ("t1", "t2", "t3", "t4")
SECONDS = 0.4
"""Each task's run: the queue behind the prefetch drains in a few of them."""


def assignment(task_id: str, starts: Path) -> TaskAssigned:
    task = TaskSubmitted(
        task_id=task_id,
        handler="steer_async",
        reply_to="census-client",
        tenant="team",
        params={"seconds": SECONDS, "starts": str(starts)},
    )
    return TaskAssigned(task=task, demand=ResourceVector(cpu=1, memory=1), node_id=NODE)


def named_or_done(messages: list[Message], request_id: str) -> tuple[set[str], bool]:
    """The tasks the answers name or whose results went out before the complete
    answer; whether a complete answer came."""
    seen: set[str] = set()
    for message in messages:
        if isinstance(message, TaskResult):
            seen.add(message.task_id)
        elif isinstance(message, HeldWork) and message.request_id == request_id:
            seen.update(task.task_id for task in message.tasks)
            if message.complete:
                return seen, True
    return seen, False


@pytest.mark.timeout(60)
async def test_the_census_names_the_work_queued_beyond_the_prefetch(
    transport_factory: TransportFactory, namespace: str, tmp_path: Path
) -> None:
    codec = EnvelopeCodec(Keyring.ephemeral())
    names = BosonSettings(namespace=namespace).names()
    executor = ExecutorService(
        ExecutorSettings(
            namespace=namespace,
            instance_id=NODE,
            node_id=NODE,
            slots=1,
            prefetch_factor=2,
            handler_modules=(HANDLERS,),
            drain_grace_s=0.5,
        ),
        await transport_factory(),
        codec,
    )
    running = [await start_in_background(executor, timeout=15)]
    admin = await transport_factory()
    tap = Tap(
        admin,
        codec,
        f"{namespace}.tap-census",
        [
            (names.events_exchange, rk_held_work(BALANCER)),
            (names.events_exchange, RK_ALL_RESULTS),
        ],
    )
    try:
        await tap.start()
        for task_id in TASKS:  # what the earlier balancer dispatched
            await admin.publish(
                names.work_exchange,
                rk_node(NODE),
                codec.encode([assignment(task_id, tmp_path)]),
                mandatory=True,
            )
        # The executor holds two (one runs, one waits for the slot); two wait
        # in its node queue.
        async with asyncio.timeout(10):
            while len(executor.handlers.active) < 2:  # noqa: ASYNC110 - the executor's state
                await asyncio.sleep(0.02)
        request = HeldWorkRequest(reply_to=BALANCER)
        await admin.publish(names.events_exchange, RK_HELD_REQUEST, codec.encode([request]))

        def complete(message: Message) -> bool:
            return (
                isinstance(message, HeldWork)
                and message.request_id == request.message_id
                and message.complete
            )

        await tap.wait_for(complete, timeout=20)
        seen, came = named_or_done(tap.messages, request.message_id)
        assert came
        assert seen == set(TASKS)
        # The first answer came at once, with what the executor held then.
        first = next(m for m in tap.messages if isinstance(m, HeldWork))
        assert not first.complete
        assert {t.task_id for t in first.tasks} == {"t1", "t2"}
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_queue(tap.queue)
        await stop_all(running)
