"""The monitor's task metrics come from what the record stored first.

With the record on, a monitor no longer receives a second copy of every
placement and result on its own queue: it counts the events each committed
transaction was the first to store. So a redelivered batch, or the same
events taken by a second monitor, counts nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from boson_services.monitor.app import MonitorService
from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.record import RecordKeeper
from boson_services.monitor.settings import MonitorSettings
from boson_services.monitor.view import ClusterView
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import NodeScore, PlacementExplanation, TaskEvent, TaskResult
from boson_shared.contract.topology import RK_ALL_RESULTS, RK_PLACED, Names
from boson_shared.record.store import RecordStore
from boson_shared.scheduling.probation import Probation
from tests.unit.record.events import lifecycle


def monitor_handlers() -> MonitorHandlers:
    view = ClusterView(
        down_after_s=3.0,
        overload_threshold=0.9,
        overload_sustain_s=5.0,
        probation=Probation.lasting(0.0),
    )
    return MonitorHandlers(
        view, MonitorMetrics(), Names("rec-metrics"), "mon", backlog_alert_threshold=10
    )


def keeper(store: RecordStore, handlers: MonitorHandlers) -> RecordKeeper:
    return RecordKeeper(
        store,
        Names("rec-metrics"),
        batch_max_items=100,
        referenced_max=10,
        clock=time.time,
        on_recorded=handlers.on_recorded,
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RecordStore]:
    store = RecordStore.open(database_url, inline_max_bytes=1024)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


def counts(handlers: MonitorHandlers) -> tuple[float, float, float, float]:
    metrics = handlers.metrics
    return (
        metrics.tasks_placed._value.get(),
        metrics.tasks_completed._value.get(),
        metrics.tasks_failed._value.get(),
        metrics.task_latency._sum.get(),
    )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_redelivered_batch_and_a_second_monitor_count_nothing_again(
    store: RecordStore,
) -> None:
    batch = lifecycle("t1") + lifecycle("t2", outcome="failed", start_with_result=True)
    first = monitor_handlers()
    await keeper(store, first).on_events(batch)
    assert counts(first)[:3] == (2, 1, 1)

    await keeper(store, first).on_events(batch)  # redelivered to the same monitor
    other = monitor_handlers()
    await keeper(store, other).on_events(list(reversed(batch)))  # taken by another
    assert counts(first)[:3] == (2, 1, 1)
    assert counts(other) == (0, 0, 0, 0)
    assert await store.count() == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_placement_carries_its_explanation_to_the_monitor(store: RecordStore) -> None:
    explanation = PlacementExplanation(
        strategy="binpack",
        nodes=(
            NodeScore(
                node_id="n1",
                alive=True,
                fits=True,
                score=0.5,
                utilisation_before=0.0,
                utilisation_after=0.5,
            ),
        ),
    )
    placed, *rest = lifecycle("t1")
    assert isinstance(placed, TaskEvent)
    explained = placed.model_copy(update={"explanation": explanation})
    handlers = monitor_handlers()
    await keeper(store, handlers).on_events([explained, *rest])
    assert handlers.recent_explanations == {"t1": explanation}
    assert handlers.metrics.placement_latency._sum.get() == pytest.approx(1.0)


def own_queue_keys(monitor: MonitorService) -> set[str]:
    return {b.routing_key for b in monitor.topology().bindings if b.queue == monitor.queue}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_with_the_record_on_the_own_queue_takes_no_second_copy(database_url: str) -> None:
    codec = EnvelopeCodec.from_settings(MonitorSettings(), keyring=Keyring.ephemeral())
    on = MonitorService(
        MonitorSettings(database_url=SecretStr(database_url)),
        MemoryTransport(MemoryBroker()),
        codec,
    )
    off = MonitorService(MonitorSettings(record=False), MemoryTransport(MemoryBroker()), codec)
    assert {RK_PLACED, RK_ALL_RESULTS} <= own_queue_keys(off)
    assert not {RK_PLACED, RK_ALL_RESULTS} & own_queue_keys(on)
    # A copy a stale binding still brings is left to the record's events.
    *_, result = lifecycle("t1")
    assert isinstance(result, TaskResult)
    assert await on.on_message(result) == []
    assert on.metrics.tasks_completed._value.get() == 0
    assert on.reply_queues.watched == 0
    await off.on_message(result)
    assert off.metrics.tasks_completed._value.get() == 1
    assert on.record is not None
    await on.record.store.close()
