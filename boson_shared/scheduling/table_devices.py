"""The GPU device columns of the node table (:class:`~boson_shared.scheduling.table.NodeTable`).

Per node a row of device capacities and allocations in integer milli-units,
each device's model (an index into ``models``) and memory; the node's ``gpu``
column is derived from them. The rule and the choice are
:mod:`~boson_shared.scheduling.devices`'.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from boson_shared.scheduling import devices as _dev
from boson_shared.scheduling.devices import MILLI, GpuDevice

IntArray = NDArray[np.int64]


class DeviceColumns:
    """The device half of the node table: its arrays and the methods that keep them."""

    _n: int
    _cap: NDArray[np.float64]
    _alloc: NDArray[np.float64]
    _dcap: IntArray
    _dalloc: IntArray
    _dmodel: IntArray
    _dmem: IntArray
    models: list[str]
    _model_code: dict[str, int]
    has_devices: bool
    node_ids: list[str]

    def _check(self, index: int) -> None:
        raise NotImplementedError

    @property
    def device_capacity(self) -> IntArray:
        """Milli-units per node and device column, ``(n, G)`` (a view; 0: no device)."""
        return self._dcap[: self._n]

    @property
    def device_allocated(self) -> IntArray:
        """Milli-units held per node and device column, ``(n, G)`` (a view)."""
        return self._dalloc[: self._n]

    @property
    def device_model(self) -> IntArray:
        """Per node and device column, the index of its model in ``models`` (-1: none)."""
        return self._dmodel[: self._n]

    def devices(self, index: int) -> list[GpuDevice]:
        """The GPU devices of row ``index``, in device order."""
        self._check(index)
        return [
            GpuDevice(
                model=self.models[int(m)] if m >= 0 else "", memory_mib=int(mem), milli=int(c)
            )
            for c, m, mem in zip(
                self._dcap[index], self._dmodel[index], self._dmem[index], strict=True
            )
            if c > 0
        ]

    def device_free(self, index: int) -> IntArray:
        """Free milli-units of each device of row ``index``."""
        self._check(index)
        return np.asarray(self._dcap[index] - self._dalloc[index], dtype=np.int64)

    def qualifying(self, models: frozenset[str] | None) -> NDArray[np.bool_]:
        """Per node and device column, whether the device may serve a request for ``models``."""
        return self._qualifying(self._dcap[: self._n], self._dmodel[: self._n], models)

    def _qualifying(
        self, dcap: IntArray, dmodel: IntArray, models: frozenset[str] | None
    ) -> NDArray[np.bool_]:
        present = dcap > 0
        if models is None:
            return present
        codes = [c for c, m in enumerate(self.models) if _dev.model_matches(m, models)]
        return np.asarray(present & np.isin(dmodel, codes))

    def pick_devices(self, index: int, gpu: float, models: frozenset[str] | None = None) -> int:
        """The devices the choice rule gives ``gpu`` GPUs on row ``index``: a mask, or -1."""
        self._check(index)
        q = self._qualifying(self._dcap[index], self._dmodel[index], models).tolist()
        free = (self._dcap[index] - self._dalloc[index]).tolist()
        return _dev.pick(free, self._dcap[index].tolist(), q, _dev.to_milli(gpu))

    # -- keeping the books -------------------------------------------------

    def _set_devices(self, i: int, devices: list[GpuDevice]) -> None:
        g = len(devices)
        if g > self._dcap.shape[1]:
            self._widen(g)
        caps = [d.milli for d in devices] + [0] * (self._dcap.shape[1] - g)
        codes = [self._code(d.model) for d in devices] + [-1] * (self._dcap.shape[1] - g)
        mems = [d.memory_mib for d in devices] + [0] * (self._dcap.shape[1] - g)
        if caps != self._dcap[i].tolist():
            held = int(self._dalloc[i].sum())
            self._dcap[i] = caps
            self._lay_out(i, held / MILLI, None)
        self._dmodel[i] = codes
        self._dmem[i] = mems
        if g:
            self.has_devices = True

    def _code(self, model: str) -> int:
        code = self._model_code.get(model)
        if code is None:
            code = self._model_code[model] = len(self.models)
            self.models.append(model)
        return code

    def _lay_out(self, i: int, gpu: float, per_device: list[int] | None) -> None:
        """Set row ``i``'s device allocation: as given, or ``gpu`` GPUs laid on in order."""
        cap = self._dcap[i]
        if per_device is not None:
            if len(per_device) > cap.shape[0]:
                raise ValueError("more device allocations than devices")
            vals = list(per_device) + [0] * (cap.shape[0] - len(per_device))
            self._dalloc[i] = np.minimum(np.maximum(vals, 0), cap)
            return
        left = _dev.to_milli(gpu)
        for j in range(cap.shape[0]):
            take = min(int(cap[j]), left)
            self._dalloc[i, j] = take
            left -= take

    def _hold(self, i: int, milli: int, mask: int) -> None:
        n, per = _dev.shape(milli)
        picked = _dev.indices_of(mask) if mask > 0 else ()
        free = self._dcap[i] - self._dalloc[i]
        if len(picked) != n or any(j >= free.shape[0] or free[j] < per for j in picked):
            raise ValueError(
                f"GPU demand of {milli} milli-units does not fit devices {picked} "
                f"of node {self.node_ids[i]!r}"
            )
        for j in picked:
            self._dalloc[i, j] += per
        self._sync_gpu(i)

    def _holding(self, i: int, n: int, per: int) -> int:
        held = self._dalloc[i].tolist()
        if per < MILLI:
            cands = [j for j, h in enumerate(held) if h >= per]
            return 0 if not cands else 1 << min(cands, key=lambda j: (held[j], j))
        full = [j for j, h in enumerate(held) if h >= MILLI]
        return _dev.mask_of(full[-n:])

    def _sync_gpu(self, i: int) -> None:
        # The gpu column is derived from integer books: exact after any history.
        self._cap[i, 2] = int(self._dcap[i].sum()) / MILLI
        self._alloc[i, 2] = int(self._dalloc[i].sum()) / MILLI

    def _widen(self, g: int) -> None:
        rows = self._dcap.shape[0]
        for name, fill in (("_dcap", 0), ("_dalloc", 0), ("_dmodel", -1), ("_dmem", 0)):
            old = getattr(self, name)
            new = np.full((rows, g), fill, dtype=np.int64)
            new[:, : old.shape[1]] = old
            setattr(self, name, new)


__all__ = ["DeviceColumns"]
