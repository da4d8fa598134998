"""Demand models: the linear default, explicit requests, the online refit, configuration."""

from __future__ import annotations

import numpy as np
import pytest

from boson_shared.contract.messages import ResourceRequest, ResourceVector, TaskUsage
from boson_shared.errors import ConfigError
from boson_shared.scheduling.demand import (
    DemandModel,
    LinearDemandModel,
    OnlineDemandModel,
    demand_model_from_name,
)


@pytest.mark.parametrize(("c", "d", "q"), [(100, 1000, 110), (50, 2000, 70), (0, 0, 0)])
def test_linear_default(c: float, d: float, q: float) -> None:
    assert LinearDemandModel().estimate(c, d) == ResourceVector(cpu=q, memory=q, gpu=0)


def test_linear_coefficients_and_requests_win_per_dimension() -> None:
    model = LinearDemandModel(cpu=2.0, memory=0.5, gpu=0.0)
    assert model.estimate(100, 1000).as_tuple() == (220, 55, 0)
    got = model.estimate(100, 1000, ResourceRequest(memory=8, gpu=1))
    assert got.as_tuple() == (220, 8, 1)


def test_online_error_falls_as_reports_arrive() -> None:
    """A synthetic workload with a known true cost: cpu = 5 + 2C + D/50, memory = 40 + D/10."""
    rng = np.random.default_rng(1)
    mib = float(2**20)

    def truth(c: float, d: float) -> tuple[float, float]:
        return 5 + 2 * c + d / 50, 40 + d / 10

    def report(c: float, d: float) -> TaskUsage:
        cpu, mem = truth(c, d)
        noise = rng.normal(1.0, 0.03, size=2)
        return TaskUsage(
            wall_s=1.0, cpu_s=cpu * noise[0], peak_memory_bytes=int(mem * noise[1] * mib)
        )

    held_out = [(float(c), float(d)) for c, d in rng.uniform([1, 10], [200, 5000], size=(50, 2))]

    def error(model: OnlineDemandModel) -> float:
        errs = []
        for c, d in held_out:
            est = model.estimate(c, d)
            cpu, mem = truth(c, d)
            errs.append(abs(est.cpu - cpu) / cpu + abs(est.memory - mem) / mem)
        return float(np.mean(errs)) / 2

    model = OnlineDemandModel(window=256, min_reports=8)
    errors = [error(model)]  # the prior alone
    for batch in (8, 32, 200):
        for c, d in rng.uniform([1, 10], [200, 5000], size=(batch, 2)):
            model.observe(float(c), float(d), report(float(c), float(d)))
        errors.append(error(model))
    assert errors[0] > 0.3
    assert errors[1] < errors[0]
    assert errors[-1] <= errors[1] + 1e-9
    assert errors[-1] < 0.03
    assert model.reports == 240
    assert model.estimate(1, 1, ResourceRequest(cpu=3)).cpu == 3


def test_online_window_is_bounded_and_tracks_change() -> None:
    model = OnlineDemandModel(window=16, min_reports=4)
    for c in range(40):
        model.observe(float(c), 0.0, TaskUsage(wall_s=1, cpu_s=3.0 * c, peak_memory_bytes=0))
    for c in range(40):  # the workload changes: only the new cost remains in the window
        model.observe(float(c), 0.0, TaskUsage(wall_s=1, cpu_s=7.0 * c, peak_memory_bytes=0))
    assert model.reports == 16
    assert model.estimate(10, 0).cpu == pytest.approx(70)


def test_online_prior_before_enough_reports() -> None:
    model = OnlineDemandModel(min_reports=5)
    model.observe(1, 1, TaskUsage(wall_s=1, cpu_s=1000, peak_memory_bytes=0))
    assert model.estimate(100, 1000) == LinearDemandModel().estimate(100, 1000)


class Doubling:
    def estimate(
        self, complexity: float, data_size: float, requests: ResourceRequest | None = None
    ) -> ResourceVector:
        return ResourceVector(cpu=2 * complexity, memory=2 * complexity)


def test_models_by_name() -> None:
    assert isinstance(demand_model_from_name("linear"), LinearDemandModel)
    assert isinstance(demand_model_from_name("Online"), OnlineDemandModel)
    custom = demand_model_from_name(f"{__name__}:Doubling")
    assert isinstance(custom, DemandModel)
    assert custom.estimate(3, 0).cpu == 6
    for bad in ("quadratic", "no.such.module:x", f"{__name__}:missing", f"{__name__}:truth_table"):
        with pytest.raises(ConfigError):
            demand_model_from_name(bad)


truth_table = {"not": "a model"}
