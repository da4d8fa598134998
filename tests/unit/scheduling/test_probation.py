"""Probation for nodes that failed, by hand (``boson_shared/scheduling/probation.py``)."""

from __future__ import annotations

import pytest

from boson_shared.scheduling.probation import Probation

HOUR = 3600.0


def test_a_node_that_never_failed_is_trusted_at_once() -> None:
    p = Probation()
    assert p.returned("a", 100.0, nodes=20) == 100.0
    assert p.on_probation(100.0) == set()


def test_a_node_back_after_failing_is_on_probation_for_the_base_time() -> None:
    p = Probation(base_s=HOUR)
    p.failed("a", 777.0)
    assert p.returned("a", 1377.0, nodes=20) == 1377.0 + HOUR
    assert p.on_probation(1377.0 + HOUR - 1) == {"a"}
    assert p.ends("a") == 1377.0 + HOUR
    assert p.on_probation(1377.0 + HOUR) == set()
    assert p.ends("a") is None


def test_each_recent_failure_doubles_the_probation_up_to_the_cap() -> None:
    p = Probation(base_s=HOUR, max_s=3 * HOUR, forget_s=24 * HOUR)
    p.failed("a", 0.0)
    assert p.returned("a", 600.0, nodes=20) == 600.0 + HOUR
    p.failed("a", 8000.0)  # while trusted again: the second failure in a day
    assert p.returned("a", 8600.0, nodes=20) == 8600.0 + 2 * HOUR
    p.failed("a", 9000.0)  # during its probation: the third, 4 h capped at 3 h
    assert p.returned("a", 9600.0, nodes=20) == 9600.0 + 3 * HOUR


def test_old_failures_are_forgotten() -> None:
    p = Probation(base_s=HOUR, forget_s=10 * HOUR)
    p.failed("a", 0.0)
    p.failed("a", 11 * HOUR)  # the first is more than 10 h old by now
    assert p.returned("a", 11 * HOUR + 600, nodes=20) == 11 * HOUR + 600 + HOUR


def test_at_most_a_share_of_the_nodes_is_on_probation_at_once() -> None:
    p = Probation(base_s=HOUR, max_share=0.1)
    for node in "abc":
        p.failed(node, 0.0)
    # 20 nodes: two at most. The third back is trusted at once.
    assert p.returned("a", 600.0, nodes=20) > 600.0
    assert p.returned("b", 700.0, nodes=20) > 700.0
    assert p.returned("c", 800.0, nodes=20) == 800.0
    assert p.on_probation(800.0) == {"a", "b"}


def test_a_small_cluster_never_puts_a_node_on_probation() -> None:
    p = Probation()
    p.failed("a", 0.0)
    assert p.returned("a", 600.0, nodes=3) == 600.0  # ⌊0.1 × 3⌋ = 0


def test_a_node_that_dies_on_probation_is_dead_not_on_probation() -> None:
    p = Probation(base_s=HOUR)
    p.failed("a", 0.0)
    p.returned("a", 600.0, nodes=20)
    p.failed("a", 900.0)
    assert p.on_probation(900.0) == set()


@pytest.mark.parametrize(
    "kwargs",
    [{"base_s": -1.0}, {"base_s": 10.0, "max_s": 5.0}, {"forget_s": -1.0}, {"max_share": 1.5}],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="probation"):
        Probation(**kwargs)


def test_lasting_raises_the_cap_to_a_longer_base() -> None:
    p = Probation.lasting(48 * HOUR)
    p.failed("a", 0.0)
    assert p.returned("a", 600.0, nodes=20) == 600.0 + 48 * HOUR
    none = Probation.lasting(0.0)
    none.failed("a", 0.0)
    assert none.returned("a", 600.0, nodes=20) == 600.0
