"""The seams the simulator drives: a node table and a batch placer.

:class:`boson_shared.scheduling.placement.NodeTable` and ``Placer`` satisfy these
Protocols; so do the baselines of :mod:`boson.simulation.baselines`.
The simulator depends on nothing else of theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class SimTable(Protocol):
    """What the simulator reads and changes on the node table."""

    @property
    def capacity(self) -> FloatArray: ...

    @property
    def allocated(self) -> FloatArray: ...

    @property
    def alive(self) -> BoolArray: ...

    @property
    def node_ids(self) -> list[str]: ...

    def set_alive(self, node_id: str, alive: bool) -> None: ...

    def allocate(
        self,
        index: int,
        demand: FloatArray,
        devices: int | Sequence[int] | None = None,
        models: frozenset[str] | None = None,
    ) -> int: ...

    def release(
        self, index: int, demand: FloatArray, devices: int | Sequence[int] | None = None
    ) -> None: ...

    def feasible(self, demand: FloatArray, models: frozenset[str] | None = None) -> BoolArray: ...

    def fit_counts(self, demand: FloatArray, models: frozenset[str] | None = None) -> IntArray: ...

    def fits_any_total(self, demand: FloatArray, models: frozenset[str] | None = None) -> bool: ...


class BatchResult(Protocol):
    """Per row: a node index, -1 waiting, -2 never placeable."""

    @property
    def indices(self) -> IntArray: ...


class BatchPlacer(Protocol):
    """Places a (m, 3) batch of demands and commits it into its table."""

    def place_batch(self, demands: FloatArray) -> BatchResult: ...


def fit_counts(table: SimTable, demand: FloatArray) -> IntArray:
    """How many more instances of ``demand`` each node can host (0 if dead).

    For identical instances this is exact whatever the strategy (the table's
    one fit rule, GPUs per device), so the simulator asks a placer for no more
    than ``fit_counts(...).sum()`` of them and knows the rest wait without asking.
    """
    return table.fit_counts(demand)


__all__ = ["BatchPlacer", "BatchResult", "SimTable", "fit_counts"]
