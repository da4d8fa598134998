"""Exact CPU and memory books in floats: every amount on a binary grid.

CPU and memory amounts are floats (demand units, any scale). Sums of floats
drift — ``0.1 + 0.2 - 0.1 - 0.2`` is not ``0`` — and the fit rule compares
with no tolerance (:data:`~boson_shared.scheduling.table.FIT_EPSILON`), so
after enough fractional allocations and releases an empty node would hold a
sliver and refuse a task asking all of it.

So every CPU and memory amount that enters the books (capacities,
allocations, demands) is first put on a grid of :data:`GRID_STEP`, a power of
two (:func:`on_grid`). A multiple of a power of two below ``2**53`` steps is
a float exactly, and so are sums and differences of such multiples while they
stay below that bound: ``2**33`` units (about 8.6e9) for fractional amounts,
any integer below ``2**53`` (memory in bytes) as it is. Within those bounds
every addition and subtraction the books make is exact — the float books
behave as integer ones, in any order — and the zero tolerance is sound. An
amount moves by at most half a step (about 5e-7 units) on the grid.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
from numpy.typing import NDArray

GRID: Final = 2**20
"""Grid points per unit."""
GRID_STEP: Final = 1.0 / GRID
"""The grid's step: every CPU and memory amount in the books is a multiple of it."""


def on_grid(amount: float) -> float:
    """``amount`` on the grid (the nearest multiple of :data:`GRID_STEP`)."""
    return round(amount * GRID) / GRID


def grid_columns(arr: NDArray[np.float64], columns: int = 2) -> NDArray[np.float64]:
    """A copy of ``arr`` (``(..., d)``) with its first ``columns`` columns on the grid."""
    out = np.array(arr, dtype=np.float64)
    out[..., :columns] = np.round(out[..., :columns] * GRID) / GRID
    return out


DEMANDS_KEPT: Final = 1024
"""Distinct demands whose shared arrays are kept (:func:`shared_demand`,
:func:`shared_gridded`): tasks mostly ask for one of a few."""


@functools.lru_cache(maxsize=DEMANDS_KEPT)
def shared_demand(amounts: tuple[float, ...]) -> tuple[tuple[float, ...], NDArray[np.float64]]:
    """``amounts`` as one tuple and one read-only array that every caller
    asking for the same amounts shares (made once, not once a task)."""
    vector = np.array(amounts, dtype=np.float64)
    vector.flags.writeable = False
    return amounts, vector


@functools.lru_cache(maxsize=DEMANDS_KEPT)
def shared_gridded(amounts: tuple[float, ...]) -> NDArray[np.float64]:
    """``amounts`` with CPU and memory on the grid (:func:`grid_columns`), as
    one read-only array that every caller asking for the same amounts shares."""
    gridded = grid_columns(np.asarray(amounts, dtype=np.float64))
    gridded.flags.writeable = False
    return gridded


__all__ = [
    "DEMANDS_KEPT",
    "GRID",
    "GRID_STEP",
    "grid_columns",
    "on_grid",
    "shared_demand",
    "shared_gridded",
]
