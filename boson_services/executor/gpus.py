"""The executor's GPUs: which it has, which task holds which, and how a task is bound.

Where the devices come from, first that applies:

1. configured (``gpu_devices`` setting): ids used as they are in
   ``CUDA_VISIBLE_DEVICES`` (indices, ``GPU-…`` UUIDs or MIG ids), each
   optionally with ``:model`` and ``:memory_mib`` — fake ids work, which is
   how tests and ``boson demo --gpu`` run without a GPU;
2. discovered through NVML (the optional ``gpu`` extra, ``nvidia-ml-py``):
   count, model, memory and UUID of each device (bound by UUID, which does
   not depend on the CUDA device order);
3. the ``gpu`` count setting alone: that many devices of no known model,
   bound by index.

With no NVML or no GPU the executor runs without GPUs (or with the count it
is given) and says why once, at start.

A task holds the devices its assignment names, exactly (the scheduler and
balancer picked them); an assignment with a GPU part and no devices (an older
balancer) gets devices by the placement choice rule from this node's own
books. Its worker process sees only those: ``CUDA_VISIBLE_DEVICES`` and
``NVIDIA_VISIBLE_DEVICES`` name them (empty for a task without GPU), and a
share of one device comes with a memory budget — the share of the device's
memory — in ``BOSON_GPU_MEMORY_BUDGET_MIB`` and in the handler's
``TaskInput.gpu_memory_budget_mib``. Nothing enforces the budget: sharing is
by agreement (``docs/design.md#gpus``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from boson_shared.contract.messages import GpuState
from boson_shared.scheduling.devices import MILLI, DeviceBook, indices_of, mask_of, shape, to_milli

logger = logging.getLogger(__name__)

ENV_VISIBLE = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
"""The variables that name a task's devices."""
ENV_BUDGET = "BOSON_GPU_MEMORY_BUDGET_MIB"
"""The memory a shared device's task may use, in MiB (absent for whole devices)."""


@dataclass(frozen=True, slots=True)
class Gpu:
    """One device of this node, as bound (``device_id``) and reported."""

    index: int
    device_id: str
    model: str = ""
    memory_mib: int = 0
    uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """The devices one task holds and what its worker is told."""

    indices: tuple[int, ...]
    device_ids: tuple[str, ...]
    milli: int
    memory_budget_mib: int | None

    def env(self) -> dict[str, str]:
        """The variables its worker process runs with."""
        visible = ",".join(self.device_ids)
        out = {name: visible for name in ENV_VISIBLE}
        if self.memory_budget_mib is not None:
            out[ENV_BUDGET] = str(self.memory_budget_mib)
        return out


NO_GPU = Binding((), (), 0, None)


def parse_configured(entries: Sequence[str]) -> list[Gpu]:
    """``id[:model[:memory_mib]]`` entries as devices; ``ValueError`` on a bad one."""
    out: list[Gpu] = []
    seen: set[str] = set()
    for k, entry in enumerate(entries):
        parts = entry.strip().split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"gpu device {entry!r}: expected id[:model[:memory_mib]]")
        if parts[0] in seen:
            raise ValueError(f"gpu device {parts[0]!r} configured twice")
        seen.add(parts[0])
        memory = 0
        if len(parts) == 3:
            if not parts[2].isdigit():
                raise ValueError(f"gpu device {entry!r}: memory_mib must be a whole number")
            memory = int(parts[2])
        out.append(Gpu(k, parts[0], parts[1] if len(parts) > 1 else "", memory))
    return out


def model_name(name: str) -> str:
    """NVML's product name as a model (``NVIDIA A100-SXM4-40GB`` → ``A100-SXM4-40GB``)."""
    for prefix in ("NVIDIA ", "Tesla "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.strip()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Nvml:
    """NVML through ``pynvml`` (``nvidia-ml-py``), or nothing with the reason why."""

    def __init__(self) -> None:
        self.module: Any = None
        self.reason = ""
        try:
            import pynvml
        except ImportError:
            self.reason = "NVML not available (install the gpu extra: nvidia-ml-py)"
            return
        try:
            pynvml.nvmlInit()
        except Exception as error:  # NVMLError: no driver, no library
            self.reason = f"NVML did not start: {error}"
            return
        self.module = pynvml

    def devices(self) -> list[Gpu]:
        """Every device NVML sees: index, UUID, model, memory."""
        nv = self.module
        if nv is None:
            return []
        out = []
        for i in range(int(nv.nvmlDeviceGetCount())):
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            uuid = _text(nv.nvmlDeviceGetUUID(handle))
            memory = int(nv.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
            model = model_name(_text(nv.nvmlDeviceGetName(handle)))
            out.append(Gpu(i, uuid, model, memory, uuid))
        return out

    def usage(self, gpus: Sequence[Gpu]) -> list[tuple[float | None, int | None]]:
        """Per device, measured utilisation (0–1) and memory in use (MiB), where NVML has them."""
        nv = self.module
        out: list[tuple[float | None, int | None]] = []
        for gpu in gpus:
            if nv is None or gpu.uuid is None:
                out.append((None, None))
                continue
            try:
                handle = nv.nvmlDeviceGetHandleByUUID(gpu.uuid)
                util = float(nv.nvmlDeviceGetUtilizationRates(handle).gpu) / 100.0
                used = int(nv.nvmlDeviceGetMemoryInfo(handle).used) // (1024 * 1024)
                out.append((min(1.0, max(0.0, util)), used))
            except Exception as error:  # a device gone or not answering: no figure this time
                logger.debug("NVML usage of %s: %s", gpu.device_id, error)
                out.append((None, None))
        return out


def resolve_gpus(
    configured: Sequence[str], count: float, nvml: Nvml | None
) -> tuple[list[Gpu], str]:
    """This node's devices (module docstring) and the one line that says where they came from."""
    if configured:
        gpus = parse_configured(configured)
        return gpus, f"GPUs: {len(gpus)} configured ({', '.join(g.device_id for g in gpus)})"
    if nvml is not None and nvml.module is not None:
        try:
            found = nvml.devices()
        except Exception as error:
            found = []
            nvml.reason = f"NVML could not list devices: {error}"
        if found:
            names = ", ".join(f"{g.model} {g.memory_mib} MiB" for g in found)
            return found, f"GPUs: {len(found)} discovered through NVML ({names})"
        nvml.reason = nvml.reason or "NVML sees no GPU"
    why = nvml.reason if nvml is not None else "GPU discovery off"
    n = int(count)
    if n > 0:
        gpus = [Gpu(i, str(i)) for i in range(n)]
        return gpus, f"GPUs: {n} from the gpu setting, bound by index ({why})"
    return [], f"GPUs: none ({why})"


class GpuBook:
    """Which task holds which of this node's devices; freed on every way a task ends."""

    def __init__(self, gpus: Sequence[Gpu]) -> None:
        self.gpus = list(gpus)
        self.book = DeviceBook(
            [MILLI] * len(self.gpus), [0] * len(self.gpus), [g.model for g in self.gpus]
        )
        self._held: dict[str, tuple[int, int]] = {}

    def hold(self, task_id: str, gpu: float, devices: Sequence[int]) -> Binding:
        """Hold ``devices`` (or, with none named, the choice rule's) for ``gpu`` GPUs.

        ``ValueError`` if the devices are not this node's, do not match the
        request's shape, or no devices are free for a request naming none.
        """
        milli = to_milli(gpu)
        n, per = shape(milli)
        if n == 0:
            if devices:
                raise ValueError(f"devices {tuple(devices)} named for a task without GPU")
            return NO_GPU
        if devices:
            bad = [j for j in devices if not 0 <= j < len(self.gpus)]
            if bad or len(set(devices)) != n:
                raise ValueError(
                    f"devices {tuple(devices)} do not fit a request of {gpu:g} GPU on a node "
                    f"with {len(self.gpus)} devices"
                )
            mask = mask_of(devices)
            for j in devices:  # exactly as named, even past what our books say is free
                self.book.held[j] += per
        else:
            mask = self.book.take(milli)
            if mask < 0:
                raise ValueError(f"no free GPU device here for {gpu:g} GPU")
        self._held[task_id] = (milli, mask)
        chosen = indices_of(mask)
        budget = None
        if per < MILLI:
            memory = self.gpus[chosen[0]].memory_mib
            budget = memory * per // MILLI if memory else None
        return Binding(chosen, tuple(self.gpus[j].device_id for j in chosen), milli, budget)

    def release(self, task_id: str) -> None:
        """The task ended (any way): its devices are free again. A second call does nothing."""
        held = self._held.pop(task_id, None)
        if held is not None:
            self.book.give(*held)

    def allocated(self) -> float:
        """GPUs held, in GPUs (exact: a sum of milli-units)."""
        return sum(min(h, MILLI) for h in self.book.held) / MILLI

    def states(
        self, usage: Sequence[tuple[float | None, int | None]] | None = None
    ) -> tuple[GpuState, ...]:
        """Each device for a heartbeat: what it is, what is held, what it measures."""
        measured = usage if usage is not None else [(None, None)] * len(self.gpus)
        return tuple(
            GpuState(
                index=g.index,
                uuid=g.uuid,
                model=g.model[:64],
                memory_mib=g.memory_mib,
                allocated_milli=min(MILLI, held),
                utilisation=util,
                memory_used_mib=used,
            )
            for g, held, (util, used) in zip(self.gpus, self.book.held, measured, strict=True)
        )


__all__ = [
    "ENV_BUDGET",
    "ENV_VISIBLE",
    "NO_GPU",
    "Binding",
    "Gpu",
    "GpuBook",
    "Nvml",
    "model_name",
    "parse_configured",
    "resolve_gpus",
]
