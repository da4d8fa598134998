"""GPU devices: exact accounting in milli-units, the one fit rule, the device choice.

A node's GPUs are devices, each with a capacity of :data:`MILLI` milli-units
(one whole GPU), a model and, where known, its memory. A GPU request below one
GPU is a *share of one device*; a request of one or more is that many *whole*
devices on one node (a request above one that is not whole is rounded up).
Amounts are integers here, so any number of allocations and releases leaves
the books exactly where they started.

Device sets travel as bit masks (bit ``j``: device ``j`` of the node), which
is why a node has at most :data:`MAX_DEVICES` of them.

The rule, used by every path that asks whether a GPU demand fits (the node
table, the scorers, the balancer, the simulator):

* no GPU asked: fits;
* a share ``g < MILLI``: some qualifying device has ``free >= g``;
* ``k`` whole GPUs: ``k`` qualifying devices are entirely free.

A device *qualifies* when the request names no model or names the device's
(:func:`model_matches`: the name itself, or the name followed by a variant
after a non-alphanumeric character, so ``A100`` takes an ``A100-SXM4-40GB``).
The choice, when a demand fits: a share goes to the qualifying device with
the least free room that holds it (best fit, lowest index on ties), so
partly used devices fill before whole ones are broken into; whole GPUs are
the lowest-numbered entirely free qualifying devices.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

MILLI: Final = 1000
"""Milli-units of one whole GPU."""

MAX_DEVICES: Final = 62
"""Most GPU devices one node may have (device sets are 64-bit masks)."""

MODEL_PATTERN: Final = r"^[A-Za-z0-9._ -]{1,64}(\|[A-Za-z0-9._ -]{1,64}){0,31}$"
"""A ``gpu_model`` constraint: model names separated by ``|`` (``"A100|H100"``)."""

_MODEL_RE = re.compile(MODEL_PATTERN)

IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One GPU of a node: its model (``""`` unknown), memory in MiB (0 unknown), capacity."""

    model: str = ""
    memory_mib: int = 0
    milli: int = MILLI


def to_milli(amount: float) -> int:
    """A GPU amount in GPUs as whole milli-units (rounded to the nearest)."""
    return round(float(amount) * MILLI)


def shape(milli: int) -> tuple[int, int]:
    """``(devices, milli per device)`` a GPU request of ``milli`` takes."""
    if milli <= 0:
        return 0, 0
    if milli < MILLI:
        return 1, milli
    return -(-milli // MILLI), MILLI


def parse_models(pattern: str | None) -> frozenset[str] | None:
    """The model names a ``gpu_model`` constraint allows (``None``: any device)."""
    if pattern is None or pattern == "":
        return None
    if not _MODEL_RE.match(pattern):
        raise ValueError(f"gpu_model must be model names separated by '|', got {pattern!r}")
    return frozenset(name.strip() for name in pattern.split("|"))


def model_matches(model: str, names: frozenset[str] | None) -> bool:
    """Whether a device of ``model`` qualifies for a request naming ``names`` (``None``: any)."""
    if names is None:
        return True
    for name in names:
        if model == name or (
            model.startswith(name) and len(model) > len(name) and not model[len(name)].isalnum()
        ):
            return True
    return False


def implied_devices(gpu: float) -> list[GpuDevice]:
    """The devices a node that states only a GPU count has: whole ones, then the remainder."""
    milli = to_milli(gpu)
    whole, rest = divmod(milli, MILLI)
    out = [GpuDevice() for _ in range(whole)]
    if rest:
        out.append(GpuDevice(milli=rest))
    return out


def mask_of(indices: Iterable[int]) -> int:
    """The bit mask of device ``indices``."""
    mask = 0
    for j in indices:
        mask |= 1 << j
    return mask


def indices_of(mask: int) -> tuple[int, ...]:
    """The device indices of a bit mask, in order."""
    out = []
    j = 0
    while mask:
        if mask & 1:
            out.append(j)
        mask >>= 1
        j += 1
    return tuple(out)


def fits(free: Sequence[int], cap: Sequence[int], ok: Sequence[bool], milli: int) -> bool:
    """The rule (module docstring) on one node's devices."""
    n, per = shape(milli)
    if n == 0:
        return True
    if per < MILLI:
        return any(q and f >= per for f, q in zip(free, ok, strict=True))
    whole = sum(1 for f, c, q in zip(free, cap, ok, strict=True) if q and c == MILLI and f == MILLI)
    return whole >= n


def pick(free: Sequence[int], cap: Sequence[int], ok: Sequence[bool], milli: int) -> int:
    """The devices the choice rule gives a request of ``milli``: a bit mask, or -1."""
    n, per = shape(milli)
    if n == 0:
        return 0
    if per < MILLI:
        best = -1
        for j, (f, q) in enumerate(zip(free, ok, strict=True)):
            if q and f >= per and (best < 0 or f < free[best]):
                best = j
        return -1 if best < 0 else 1 << best
    chosen = [
        j
        for j, (f, c, q) in enumerate(zip(free, cap, ok, strict=True))
        if q and c == MILLI and f == MILLI
    ][:n]
    return mask_of(chosen) if len(chosen) == n else -1


def fit_count(free: IntArray, cap: IntArray, ok: NDArray[np.bool_], milli: int) -> IntArray:
    """Per node (rows of ``free``), how many requests of ``milli`` its devices hold."""
    n, per = shape(milli)
    if n == 0:
        return np.full(free.shape[0], np.iinfo(np.int32).max, dtype=np.int64)
    if per < MILLI:
        return np.asarray(np.where(ok, free // per, 0).sum(axis=1), dtype=np.int64)
    whole = (ok & (cap == MILLI) & (free == MILLI)).sum(axis=1)
    return np.asarray(whole // n, dtype=np.int64)


def fragmentation(
    free: IntArray,
    cap: IntArray,
    other_ok: NDArray[np.bool_],
    points_milli: Sequence[int],
) -> NDArray[np.float64]:
    """Per node, the expected idle GPU (milli-units) a typical task could not use.

    Weng et al.'s measure (*Beware of Fragmentation*, USENIX ATC 2023): for
    each typical task, a node's idle GPU is fragment entirely when the task
    asks no GPU or cannot run there (its other dimensions do not fit:
    ``other_ok[p, i]`` false, or its GPUs do not fit); when it can run, the
    idle part of every device with less free room than the task's per-device
    share is fragment. The mean over the typical tasks, each equally likely.
    ``free`` and ``cap`` are ``(n, G)``; absent devices have capacity 0.
    """
    total = free.sum(axis=1).astype(np.float64)
    acc = np.zeros(free.shape[0])
    for p, milli in enumerate(points_milli):
        n, per = shape(milli)
        if n == 0:
            acc += total
            continue
        if per < MILLI:
            can = np.any(free >= per, axis=1)
        else:
            can = ((cap == MILLI) & (free == MILLI)).sum(axis=1) >= n
        small = np.where(free < per, free, 0).sum(axis=1).astype(np.float64)
        acc += np.where(can & other_ok[p], small, total)
    out: NDArray[np.float64] = acc / max(1, len(points_milli))
    return out


@dataclass
class DeviceBook:
    """One node's GPU devices as a service outside the node table keeps them.

    The same rule and choice as the table (:func:`fits`, :func:`pick`), in
    plain lists: the balancer's view of a node between snapshots.
    """

    cap: list[int]
    held: list[int]
    models: list[str]

    @classmethod
    def of(cls, gpu: float, states: Sequence[tuple[str, int]] = ()) -> DeviceBook:
        """From a node's reported devices (model, milli held each), else its GPU count."""
        if states:
            return cls([MILLI] * len(states), [h for _, h in states], [m for m, _ in states])
        devices = implied_devices(gpu)
        return cls([d.milli for d in devices], [0] * len(devices), [""] * len(devices))

    def qualifying(self, models: frozenset[str] | None) -> list[bool]:
        return [model_matches(m, models) for m in self.models]

    def fits(self, milli: int, models: frozenset[str] | None = None) -> bool:
        free = [c - h for c, h in zip(self.cap, self.held, strict=True)]
        return fits(free, self.cap, self.qualifying(models), milli)

    def take(
        self,
        milli: int,
        models: frozenset[str] | None = None,
        prefer: int = 0,
        limit: Sequence[int] | None = None,
    ) -> int:
        """Hold ``milli`` on ``prefer`` if it fits there, else on the choice rule's devices.

        ``limit``: the most each device may give (a head reservation's spare).
        Returns the mask held (0: no GPU part; -1: it does not fit, nothing held).
        """
        n, per = shape(milli)
        if n == 0:
            return 0
        free = [c - h for c, h in zip(self.cap, self.held, strict=True)]
        if limit is not None:
            free = [min(f, limit[j]) if j < len(limit) else 0 for j, f in enumerate(free)]
        ok = self.qualifying(models)
        chosen = indices_of(prefer)
        good = len(chosen) == n and all(
            j < len(free) and ok[j] and free[j] >= per and (per < MILLI or self.cap[j] == MILLI)
            for j in chosen
        )
        mask = prefer if good else pick(free, self.cap, ok, milli)
        if mask < 0:
            return -1
        for j in indices_of(mask):
            self.held[j] += per
        return mask

    def give(self, milli: int, mask: int) -> None:
        """Take ``milli`` back off the devices of ``mask``."""
        _, per = shape(milli)
        for j in indices_of(mask):
            if j < len(self.held):
                self.held[j] = max(0, self.held[j] - per)


__all__ = [
    "MAX_DEVICES",
    "MILLI",
    "MODEL_PATTERN",
    "DeviceBook",
    "GpuDevice",
    "fit_count",
    "fits",
    "fragmentation",
    "implied_devices",
    "indices_of",
    "mask_of",
    "model_matches",
    "parse_models",
    "pick",
    "shape",
    "to_milli",
]
