"""Demand models: from a task's complexity and data size to a resource vector.

See ``docs/design.md#demand``.

The default is linear: ``Q = C + D / 100`` resource units (C=100, D=1000 →
110; C=50, D=2000 → 70), mapped to a vector by per-resource coefficients —
by default ``cpu = Q``, ``memory = Q``, ``gpu = 0`` — so that a node's two
main dimensions fill together and the 1-D arithmetic of the worked example
(``docs/design.md#worked-example``) holds on each of them. Explicit
requests win, dimension by dimension.

:class:`OnlineDemandModel` refits ``resource = a + b·C + c·D`` per resource by
least squares over a bounded window of the usage executors report, turning
usage into demand units with two documented conversions (CPU-seconds per
unit, bytes per unit). Until it has seen enough reports it answers with its
prior, the linear model.

Models are chosen by configuration with :func:`demand_model_from_name`: a
built-in name or ``"package.module:attr"``.
"""

from __future__ import annotations

import importlib
from collections import deque
from typing import Protocol, runtime_checkable

import numpy as np

from boson_shared.contract.messages import ResourceRequest, ResourceVector, TaskUsage
from boson_shared.errors import ConfigError


@runtime_checkable
class DemandModel(Protocol):
    """Turns a task's complexity and data size into the demand placement uses."""

    def estimate(
        self, complexity: float, data_size: float, requests: ResourceRequest | None = None
    ) -> ResourceVector:
        """The task's demand; explicit ``requests`` win per dimension."""
        ...


def apply_requests(
    estimate: tuple[float, float, float], requests: ResourceRequest | None
) -> ResourceVector:
    """``estimate`` with every dimension the task requested explicitly replaced."""
    cpu, memory, gpu = (max(0.0, float(v)) for v in estimate)
    if requests is not None:
        cpu = cpu if requests.cpu is None else requests.cpu
        memory = memory if requests.memory is None else requests.memory
        gpu = gpu if requests.gpu is None else requests.gpu
    return ResourceVector(cpu=cpu, memory=memory, gpu=gpu)


class LinearDemandModel:
    """``Q = C + D / data_divisor``, then ``(cpu, memory, gpu) = Q · coefficients``."""

    def __init__(
        self,
        data_divisor: float = 100.0,
        cpu: float = 1.0,
        memory: float = 1.0,
        gpu: float = 0.0,
    ) -> None:
        if data_divisor <= 0:
            raise ValueError("data_divisor must be positive")
        if min(cpu, memory, gpu) < 0:
            raise ValueError("coefficients must be non-negative")
        self.data_divisor = data_divisor
        self.coefficients = (cpu, memory, gpu)

    def units(self, complexity: float, data_size: float) -> float:
        """The scalar demand ``Q`` in resource units."""
        return complexity + data_size / self.data_divisor

    def estimate(
        self, complexity: float, data_size: float, requests: ResourceRequest | None = None
    ) -> ResourceVector:
        """``Q`` mapped by the coefficients; explicit requests win per dimension."""
        q = self.units(complexity, data_size)
        c0, c1, c2 = self.coefficients
        return apply_requests((q * c0, q * c1, q * c2), requests)


class OnlineDemandModel:
    """Least-squares refit of ``resource = a + b·C + c·D`` over the last ``window`` reports.

    Usage becomes demand units as ``cpu = cpu_s / cpu_seconds_per_unit`` and
    ``memory = peak_memory_bytes / bytes_per_unit``; GPU use is not reported,
    so the GPU estimate stays the prior's. With fewer than ``min_reports``
    reports the prior answers.
    """

    def __init__(
        self,
        prior: LinearDemandModel | None = None,
        window: int = 1024,
        min_reports: int = 8,
        cpu_seconds_per_unit: float = 1.0,
        bytes_per_unit: float = float(2**20),
    ) -> None:
        if window < 3 or min_reports < 3:
            raise ValueError("need a window and min_reports of at least 3 (three coefficients)")
        if cpu_seconds_per_unit <= 0 or bytes_per_unit <= 0:
            raise ValueError("unit conversions must be positive")
        self.prior = prior or LinearDemandModel()
        self.min_reports = min_reports
        self.cpu_seconds_per_unit = cpu_seconds_per_unit
        self.bytes_per_unit = bytes_per_unit
        self._reports: deque[tuple[float, float, float, float]] = deque(maxlen=window)
        self._coef: np.ndarray | None = None  # (3 features, 2 resources), None: use the prior
        self._stale = False

    def observe(self, complexity: float, data_size: float, usage: TaskUsage) -> None:
        """Record what a finished task really used."""
        self._reports.append(
            (
                complexity,
                data_size,
                usage.cpu_s / self.cpu_seconds_per_unit,
                usage.peak_memory_bytes / self.bytes_per_unit,
            )
        )
        self._stale = True

    @property
    def reports(self) -> int:
        """How many reports the window holds."""
        return len(self._reports)

    def coefficients(self) -> np.ndarray | None:
        """``(3, 2)``: intercept, per-complexity and per-data-size terms for cpu and memory."""
        if self._stale:
            self._refit()
        return self._coef

    def _refit(self) -> None:
        self._stale = False
        if len(self._reports) < self.min_reports:
            self._coef = None
            return
        data = np.asarray(self._reports, dtype=np.float64)
        x = np.column_stack([np.ones(data.shape[0]), data[:, 0], data[:, 1]])
        # Scale columns so that D (bytes, often ~1e6) and C (~1e2) are equally
        # conditioned; lstsq then returns the minimum-norm fit if they are collinear.
        scale = np.abs(x).max(axis=0)
        scale[scale == 0] = 1.0
        coef, *_ = np.linalg.lstsq(x / scale, data[:, 2:4], rcond=None)
        self._coef = coef / scale[:, None]

    def estimate(
        self, complexity: float, data_size: float, requests: ResourceRequest | None = None
    ) -> ResourceVector:
        """The refitted estimate (the prior's before enough reports); requests win."""
        coef = self.coefficients()
        prior = self.prior.estimate(complexity, data_size)
        if coef is None:
            return apply_requests(prior.as_tuple(), requests)
        cpu, memory = (np.array([1.0, complexity, data_size]) @ coef).tolist()
        return apply_requests((cpu, memory, prior.gpu), requests)


_BUILTIN: dict[str, type[LinearDemandModel] | type[OnlineDemandModel]] = {
    "linear": LinearDemandModel,
    "online": OnlineDemandModel,
}


def demand_model_from_name(name: str) -> DemandModel:
    """The model configuration names: ``linear``, ``online`` or ``package.module:attr``.

    ``attr`` may be a model instance, or a class or factory called without
    arguments. Anything else is a :class:`~boson_shared.errors.ConfigError`.
    """
    builtin = _BUILTIN.get(name.strip().lower())
    if builtin is not None:
        return builtin()
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"unknown demand model {name!r}: use {', '.join(_BUILTIN)} or 'package.module:attr'"
        )
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load demand model {name!r}: {e}") from e
    model = target
    if isinstance(target, type) or (callable(target) and not hasattr(target, "estimate")):
        try:
            model = target()
        except Exception as e:  # a user's factory: any failure is a configuration error
            raise ConfigError(f"cannot build demand model {name!r}: {e}") from e
    if not isinstance(model, DemandModel):
        raise ConfigError(f"demand model {name!r} has no estimate(complexity, data_size, requests)")
    return model


__all__ = [
    "DemandModel",
    "LinearDemandModel",
    "OnlineDemandModel",
    "apply_requests",
    "demand_model_from_name",
]
