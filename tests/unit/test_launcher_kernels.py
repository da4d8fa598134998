"""The in-process cluster readies the scheduler's compiled kernels before any service starts.

Readied on the scheduler's own construction instead, they would load (on a
fresh install: compile, for seconds) on the event loop the monitor already
runs on, and the monitor would find its own sweeps late.
"""

from __future__ import annotations

import pytest

from boson.launcher import EmbeddedCluster
from boson_shared.runtime.service import Service
from boson_shared.scheduling import fgd_device_index, fgd_index
from boson_shared.scheduling.kernels import kernels_ready, ready_kernels, uses_kernels
from boson_shared.scheduling.scores import STRATEGIES, Strategy
from boson_shared.settings import BosonSettings


class _RecordingCluster(EmbeddedCluster):
    """Notes, as each service starts, whether the kernels were ready by then."""

    seen: list[tuple[str, bool]]

    async def start(self, service: Service) -> Service:
        self.seen.append((service.name, kernels_ready("binpack-fgd")))
        return await super().start(service)


def _as_in_a_fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fgd_index.warm_up, "done", False)
    monkeypatch.setattr(fgd_device_index.warm_up, "done", False)


async def test_no_service_starts_before_the_kernels_are_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _as_in_a_fresh_process(monkeypatch)
    notices: list[str] = []
    cluster = _RecordingCluster(BosonSettings(namespace="kernels"), notice=notices.append)
    cluster.seen = []
    try:
        await cluster.start_control_plane(strategy="binpack-fgd")
    finally:
        await cluster.stop()

    assert [name for name, _ in cluster.seen] == ["monitor", "scheduler", "balancer", "transfer"]
    assert all(ready for _, ready in cluster.seen), cluster.seen


async def test_ready_kernels_says_nothing_when_they_are_ready() -> None:
    ready_kernels("binpack-fgd")
    notices: list[str] = []
    cluster = EmbeddedCluster(BosonSettings(namespace="kernels"), notice=notices.append)

    await cluster.ready_kernels("binpack-fgd")

    assert notices == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_only_binpack_fgd_has_kernels_to_ready(
    strategy: Strategy, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_in_a_fresh_process(monkeypatch)
    assert uses_kernels(strategy) is (strategy == "binpack-fgd")
    assert kernels_ready(strategy) is (strategy != "binpack-fgd")
