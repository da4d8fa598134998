"""A mixed workload whose every result the test checks against numpy."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from boson.client import TaskRequest
from boson_shared.contract.messages import TaskResult


@dataclass(frozen=True)
class Expected:
    request: TaskRequest
    check: Callable[[Any], None]


def _csv(array: np.ndarray) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, array, delimiter=",", header="a,b,c", comments="")
    return buffer.getvalue().encode()


def mixed_tasks(count: int, seed: int = 0) -> list[Expected]:
    """``count`` tasks cycling through stats, forecast, anomaly, noop and burn."""
    rng = np.random.default_rng(seed)
    tasks: list[Expected] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            array = rng.normal(size=(40, 3))

            def check_stats(out: Any, array: np.ndarray = array) -> None:
                assert out["rows"] == array.shape[0]
                for j, name in enumerate("abc"):
                    assert out["columns"][name]["mean"] == pytest.approx(array[:, j].mean())
                    assert out["columns"][name]["std"] == pytest.approx(array[:, j].std(ddof=1))

            tasks.append(Expected(TaskRequest("stats", data=_csv(array)), check_stats))
        elif kind == 1:
            values = (rng.normal(size=30) + np.arange(30) * rng.uniform(0.5, 2)).tolist()

            def check_forecast(out: Any, values: list[float] = values) -> None:
                slope, intercept = np.polyfit(np.arange(len(values)), values, 1)
                expected = slope * np.arange(len(values), len(values) + 4) + intercept
                assert out["forecast"] == pytest.approx(expected.tolist())

            tasks.append(
                Expected(
                    TaskRequest("forecast", params={"values": values, "horizon": 4}),
                    check_forecast,
                )
            )
        elif kind == 2:
            series = rng.normal(size=60)
            spike = int(rng.integers(0, 60))
            series[spike] = 50.0

            def check_anomaly(out: Any, spike: int = spike) -> None:
                assert spike in [a["index"] for a in out["anomalies"]]

            tasks.append(
                Expected(TaskRequest("anomaly", params={"values": series.tolist()}), check_anomaly)
            )
        elif kind == 3:

            def check_echo(out: Any, i: int = i) -> None:
                assert out == {"i": i}

            tasks.append(Expected(TaskRequest("noop", params={"echo": {"i": i}}), check_echo))
        else:

            def check_burn(out: Any) -> None:
                assert out["cpu_s"] >= 0.001

            tasks.append(Expected(TaskRequest("burn", params={"seconds": 0.001}), check_burn))
    return tasks


def check_results(expected: list[Expected], results: list[TaskResult]) -> None:
    assert len(results) == len(expected)
    for item, result in zip(expected, results, strict=True):
        assert result.status == "succeeded", result.error
        item.check(result.output)


__all__ = ["Expected", "check_results", "mixed_tasks"]
