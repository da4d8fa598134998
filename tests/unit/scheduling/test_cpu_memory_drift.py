"""CPU and memory books: no drift after any history of fractional allocations and releases."""

from __future__ import annotations

import random

import numpy as np
import pytest

from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.scores import STRATEGIES, Strategy
from boson_shared.scheduling.table import NodeTable

FRACTIONS = (0.1, 0.2, 0.3, 0.7, 0.05, 1 / 3, 0.0123456789, 2.675)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_drift_many_fractional_cpu_allocations_then_a_whole_node_task_places(
    strategy: Strategy, batch: bool
) -> None:
    """After many fractional CPU and memory allocations and releases, a node is exactly
    empty again and a task asking all of its CPU and memory places."""
    table = NodeTable()
    table.upsert("n0", (10.0, 6.4, 0.0))
    table.upsert("n1", (10.0, 6.4, 0.0))
    placer = Placer(table, strategy)
    rng = random.Random(11)
    held: list[tuple[int, tuple[float, float, float]]] = []
    for _ in range(600):
        if held and rng.random() < 0.5:
            i, demand = held.pop(rng.randrange(len(held)))
            table.release(i, demand)
            continue
        demand = (rng.choice(FRACTIONS), rng.choice(FRACTIONS), 0.0)
        if batch:
            indices = placer.place_batch(np.array([demand] * 3)).indices
            held += [(int(i), demand) for i in indices if i >= 0]
        else:
            got = placer.place(demand)
            if got.index is not None:
                held.append((got.index, demand))
    for i, demand in held:
        table.release(i, demand)
    assert np.all(table.allocated == 0.0)
    assert placer.place((10.0, 6.4, 0.0)).status == "placed"
    assert placer.place((10.0, 6.4, 0.0)).status == "placed"
