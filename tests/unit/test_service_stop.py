"""A service stops within bounds even when a periodic loop loses its cancel.

A library can hand a cancelled caller an error of its own in place of the
cancel (aiormq does, when a channel closes under a cancelled call: see
``boson_shared.bus.cancel_wins``); the periodic loop then takes it for a
failed run and carries on. The stop must still end it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskSubmitted
from boson_shared.contract.topology import Topology
from boson_shared.errors import BrokerUnavailableError, ConfigError
from boson_shared.runtime import service as service_module
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit
from boson_shared.runtime.service import Periodic, Service, start_in_background, stop_all
from boson_shared.settings import BosonSettings
from tests.support.stuck_service import BareService, DeafOnStop, StuckOnStop, deaf_to_cancels

pytestmark = pytest.mark.timeout(60)


class LosesItsCancel(BareService):
    """One periodic job, each call of which turns a cancel into a broker error."""

    name = "loses-its-cancel"

    def __init__(self, *, interval_s: float, call_s: float) -> None:
        settings = BosonSettings(namespace="stop-test", instance_id="one", drain_grace_s=1.0)
        codec = EnvelopeCodec(Keyring.ephemeral())
        super().__init__(settings, MemoryTransport(MemoryBroker()), codec)
        self.interval_s = interval_s
        self.call_s = call_s
        self.called = asyncio.Event()
        self.losing = True
        """False: the job takes its cancel (the test's clean-up)."""

    def background(self) -> Sequence[tuple[float, Periodic]]:
        return [(self.interval_s, self.look_up)]

    async def look_up(self) -> None:
        self.called.set()
        try:
            await asyncio.sleep(self.call_s)
        except asyncio.CancelledError:
            if not self.losing:
                raise
            raise BrokerUnavailableError("channel closed") from None


async def _seconds_to_stop(service: LosesItsCancel) -> float:
    """Stop ``service`` while its job runs; how long until ``run`` returns."""
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(5):
            await service.started.wait()
            await service.called.wait()
        began = time.monotonic()
        stop.set()
        # asyncio.wait: a timeout around ``await running`` would wait for it all the same.
        await asyncio.wait({running}, timeout=10)
        assert running.done(), "the service did not stop within 10 s"
        return time.monotonic() - began
    finally:
        service.losing = False
        running.cancel()
        await asyncio.wait({running}, timeout=5)


async def test_a_job_that_loses_its_cancel_is_cancelled_again() -> None:
    # After the lost cancel the loop would sleep out its interval.
    service = LosesItsCancel(interval_s=60.0, call_s=0.5)
    assert await _seconds_to_stop(service) < 3.0


async def test_a_job_that_loses_every_cancel_ends_once_stopping() -> None:
    # Every cancel lands in the job and is lost; the loop must see the stop itself.
    service = LosesItsCancel(interval_s=0.0, call_s=0.5)
    assert await _seconds_to_stop(service) < 3.0


async def test_stop_all_leaves_its_caller_s_own_bound_working() -> None:
    """A caller's timeout around ``stop_all`` cancels it: that cancel must
    reach the caller, not be taken for the service's failure and swallowed."""
    settings = BosonSettings(namespace="stop-test", instance_id="stuck", drain_grace_s=0.1)
    broker = MemoryBroker()
    service = StuckOnStop(settings, MemoryTransport(broker), EnvelopeCodec(Keyring.ephemeral()))
    running = await start_in_background(service)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await stop_all([running])
    assert time.monotonic() - began < 5
    await asyncio.wait({running.task}, timeout=5)
    assert running.task.cancelled()
    broker.close()


async def test_stop_all_is_bounded_for_a_service_that_ignores_its_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its bound, ``stop_all`` cancels the service, waits a bounded
    while more and reports it, even when the service never takes the cancel."""
    settings = BosonSettings(namespace="stop-test", instance_id="deaf", drain_grace_s=0.1)
    broker = MemoryBroker()
    service = DeafOnStop(settings, MemoryTransport(broker), EnvelopeCodec(Keyring.ephemeral()))
    running = await start_in_background(service)
    monkeypatch.setattr(service_module, "CANCEL_WAIT_S", 0.3)
    stopping = asyncio.ensure_future(stop_all([running], timeout=0.3))
    try:
        await asyncio.wait({stopping}, timeout=10)
        assert stopping.done(), "stop_all waited on a service that ignores its cancel"
        [(failed, error)] = stopping.result()
        assert failed is service
        assert isinstance(error, TimeoutError)
        assert str(error) == (
            "deaf-on-stop did not stop within 0.3s; still running after its cancel"
        )
        assert not running.task.done()
        assert not service.transport.is_connected  # closed all the same
    finally:
        service.released.set()
        await asyncio.wait({stopping, running.task}, timeout=5)
        stopping.cancel()
        broker.close()


class IgnoresItsCancel(BareService):
    """One periodic job that takes no cancel at all until released."""

    name = "ignores-its-cancel"
    periodic_end_s = 1.0

    def __init__(self) -> None:
        settings = BosonSettings(namespace="stop-test", instance_id="deaf", drain_grace_s=0.1)
        codec = EnvelopeCodec(Keyring.ephemeral())
        super().__init__(settings, MemoryTransport(MemoryBroker()), codec)
        self.called = asyncio.Event()
        self.released = asyncio.Event()

    def background(self) -> Sequence[tuple[float, Periodic]]:
        return [(60.0, self.look_up)]

    async def look_up(self) -> None:
        self.called.set()
        await deaf_to_cancels(self.released)


async def test_a_job_that_ignores_every_cancel_is_left_behind_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = IgnoresItsCancel()
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(5):
            await service.called.wait()
        stop.set()
        await asyncio.wait({running}, timeout=5)
        assert running.done(), "the stop waited on a job that ignores its cancel"
        running.result()
        assert (
            "ignores-its-cancel: ignores-its-cancel:look_up did not end within 1.0s of its "
            "cancel; the stop goes on without it"
        ) in caplog.text
    finally:
        service.released.set()
        running.cancel()
        await asyncio.wait({running}, timeout=5)
        # The loop left behind, its job released, now sleeps out its interval.
        left = {t for t in asyncio.all_tasks() if t.get_name() == "ignores-its-cancel:look_up"}
        for job in left:
            job.cancel()
        if left:
            await asyncio.wait(left, timeout=5)


async def test_running_service_stop_is_bounded_and_names_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = BosonSettings(namespace="stop-test", instance_id="stuck", drain_grace_s=0.1)
    broker = MemoryBroker()
    service = StuckOnStop(settings, MemoryTransport(broker), EnvelopeCodec(Keyring.ephemeral()))
    running = await start_in_background(service)
    # The default bound: the drain grace and the stop margin, made short here.
    monkeypatch.setattr(service_module, "STOP_MARGIN_S", 0.4)
    stopping = asyncio.ensure_future(running.stop())
    try:
        await asyncio.wait({stopping}, timeout=10)
        assert stopping.done(), "RunningService.stop waited past its bound"
        with pytest.raises(
            TimeoutError, match=r"^stuck-on-stop did not stop within 0\.5s; cancelled$"
        ):
            stopping.result()
        assert running.task.cancelled()
    finally:
        stopping.cancel()
        running.task.cancel()
        await asyncio.wait({running.task}, timeout=5)
        broker.close()


class ConsumesAMissingQueue(Service):
    """A periodic job, and a consumer whose start fails: its queue does not exist."""

    name = "consumes-a-missing-queue"

    def __init__(self) -> None:
        settings = BosonSettings(namespace="stop-test", instance_id="missing")
        codec = EnvelopeCodec(Keyring.ephemeral())
        super().__init__(settings, MemoryTransport(MemoryBroker()), codec)
        self.jobs = 0

    def topology(self) -> Topology:
        return self.names.base()

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        async def handle(message: TaskSubmitted) -> Sequence[Emit]:
            return []

        return [ConsumerSpec("stop-test.nowhere", (TaskSubmitted,), handle)]

    def background(self) -> Sequence[tuple[float, Periodic]]:
        return [(0.01, self.job)]

    async def job(self) -> None:
        self.jobs += 1


async def test_a_failed_start_raises_its_own_error_and_ends_the_periodic_jobs() -> None:
    """The error itself, not wrapped in a group: ``boson_shared.runtime.main``
    turns a ``BosonError`` into one clear line."""
    service = ConsumesAMissingQueue()
    with pytest.raises(ConfigError, match="the queue does not exist"):
        await start_in_background(service, timeout=5)
    jobs = service.jobs
    await asyncio.sleep(0.1)
    assert service.jobs == jobs  # the periodic job no longer runs
