"""The resource value types tasks and nodes are measured in: demand vectors,
explicit requests, GPU devices.

Shared by the messages of several subjects (a task's placement, a node's
heartbeat, the record), so they live apart from all of them.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from pydantic import Field, StringConstraints, model_validator

from boson_shared.contract.base import Count, Fraction, Model, NonNegative


class ResourceVector(Model):
    """Resource amounts in demand units, one per dimension."""

    cpu: NonNegative = Field(default=0.0, description="Demand units.")
    memory: NonNegative = Field(default=0.0, description="Demand units.")
    gpu: NonNegative = Field(default=0.0, description="Demand units.")

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.cpu, self.memory, self.gpu)


GpuModels: TypeAlias = Annotated[
    str,
    StringConstraints(
        max_length=2100, pattern=r"^[A-Za-z0-9._ -]{1,64}(\|[A-Za-z0-9._ -]{1,64}){0,31}$"
    ),
]
"""GPU model names separated by ``|``: a request's devices must be one of them."""

DeviceIndex: TypeAlias = Annotated[int, Field(ge=0, le=61)]
"""A GPU device's number on its node (0-based; a node has at most 62)."""


class ResourceRequest(Model):
    """Explicit per-dimension requests; each one set overrides the demand model.

    ``gpu`` below 1 is a share of ONE device; 1 or more is that many whole
    devices on one node, so it must then be a whole number. ``gpu_model``
    limits which devices qualify (``"A100|H100"``).
    """

    cpu: NonNegative | None = None
    memory: NonNegative | None = None
    gpu: Annotated[float, Field(ge=0, le=62, allow_inf_nan=False)] | None = None
    gpu_model: GpuModels | None = None

    @model_validator(mode="after")
    def _whole_gpus(self) -> ResourceRequest:
        if self.gpu is not None and self.gpu >= 1 and self.gpu != int(self.gpu):
            raise ValueError(
                f"a GPU request of 1 or more is a number of whole devices, got {self.gpu}"
            )
        return self


class GpuState(Model):
    """One GPU device of a node: what it is and, live, how it is used."""

    index: DeviceIndex
    uuid: Annotated[str, StringConstraints(max_length=128)] | None = None
    model: Annotated[str, StringConstraints(max_length=64)] = ""
    memory_mib: Count = Field(default=0, description="Device memory in MiB (0: not known).")
    allocated_milli: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0, description="Thousandths of the device held by tasks placed there."
    )
    utilisation: Fraction | None = Field(default=None, description="Measured (NVML), if known.")
    memory_used_mib: Count | None = Field(default=None, description="Measured (NVML), if known.")


__all__ = [
    "DeviceIndex",
    "GpuModels",
    "GpuState",
    "ResourceRequest",
    "ResourceVector",
]
