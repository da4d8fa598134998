"""The placement benchmark's own check: its plain reference and the placer
place the same demands.

The placer puts every CPU and memory amount it is given on the books' grid
before it scores it (``boson_shared/scheduling/amounts.py``). A reference
that scored the amounts as drawn placed a slightly different workload, and
the benchmark stopped on its check although both agree on the same amounts:
on the trace, ``binpack-fgd`` at 50, 200 and 1,000 nodes (a choice the half
step decided); here, plain binpack, where a demand less than half a step
above a node's free memory fits there only once on the grid.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import placement
from boson_shared.scheduling.amounts import GRID_STEP

FREE = 3 / 256
"""A node's free memory, on the grid."""


def one_demand_just_above_the_free_memory() -> tuple[np.ndarray, np.ndarray]:
    """A request less than half a step above ``FREE``: on the grid, exactly ``FREE``."""
    return np.array([[10.0, FREE + 0.3 * GRID_STEP, 0.0]]), np.array([1.0])


def a_node_with_free_memory_for_one(
    n: int, caps: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    return np.array([[100.0, 0.5, 0.0]]), np.array([[0.0, 0.5 - FREE, 0.0]])


def test_the_plain_reference_places_the_demands_the_placer_places(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(placement, "load_demands", one_demand_just_above_the_free_memory)
    monkeypatch.setattr(placement, "load_capacities", lambda: np.zeros((1, 3)))
    monkeypatch.setattr(placement, "make_cluster", a_node_with_free_memory_for_one)
    figures = placement.run(1, 3, 0.1, 0, "binpack", 2, False)
    assert figures["placed"] == 1  # the first; then the node is full
