"""The monitor's loop gives the dashboard's thread turns at the GIL through a burst of messages."""

from __future__ import annotations

from boson_services.monitor.app import MonitorService
from boson_services.monitor.dashboard.gil_turns import GilTurns
from boson_services.monitor.settings import MonitorSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from tests.support.fakes import Clock
from tests.support.monitor import heartbeat


class Pauses:
    """A ``sleep`` that records what it was asked and lets the clock run on."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.clock.now += seconds


def test_it_pauses_once_a_slice_has_passed_and_not_before() -> None:
    clock = Clock(10.0)
    pauses = Pauses(clock)
    turns = GilTurns(slice_s=0.002, pause_s=0.0001, clock=clock, sleep=pauses)
    for _ in range(3):
        clock.now += 0.0006
        turns.turn()
    assert pauses.asked == []  # 1.8 ms of messages: within the slice
    clock.now += 0.0006
    turns.turn()
    assert pauses.asked == [0.0001]
    # The slice counts from the end of the pause.
    clock.now += 0.0019
    turns.turn()
    assert pauses.asked == [0.0001]
    clock.now += 0.0002
    turns.turn()
    assert pauses.asked == [0.0001, 0.0001]
    assert turns.pauses == 2


def test_a_busy_stretch_of_20_ms_gives_the_gil_away_about_every_slice() -> None:
    clock = Clock(0.0)
    pauses = Pauses(clock)
    turns = GilTurns(slice_s=0.002, pause_s=0.0001, clock=clock, sleep=pauses)
    for _ in range(100):  # a message every 0.2 ms
        clock.now += 0.0002
        turns.turn()
    assert 9 <= len(pauses.asked) <= 10


def monitor(settings: MonitorSettings) -> MonitorService:
    codec = EnvelopeCodec.from_settings(settings, keyring=Keyring.ephemeral())
    return MonitorService(settings, MemoryTransport(MemoryBroker()), codec)


async def test_a_monitor_with_the_dashboard_pauses_between_heartbeats_of_a_burst() -> None:
    """Without the pauses its thread waits for the GIL through the whole burst."""
    service = monitor(MonitorSettings(record=False, dashboard_port=0))
    assert service.dashboard is not None
    clock = Clock(0.0)
    pauses = Pauses(clock)
    service.dashboard.gil_turns = GilTurns(clock=clock, sleep=pauses)
    for number in range(200):  # 1,000 nodes' burst, 0.2 ms a heartbeat: 40 ms of the loop
        clock.now += 0.0002
        await service.on_message(heartbeat(f"node-{number:04d}"))
    assert len(pauses.asked) >= 7  # one every 5 ms
    assert len(service.handlers.view.nodes) == 200


async def test_a_monitor_without_the_dashboard_has_nobody_to_give_way_to() -> None:
    service = monitor(MonitorSettings(record=False))
    assert service.dashboard is None
    await service.on_message(heartbeat("node-0001"))
    assert len(service.handlers.view.nodes) == 1
