"""The comparison table shows fragmentation-sized numbers to their significant digits."""

from __future__ import annotations

import pytest

from boson.simulation.report import number_text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.01207, "0.0121"),  # a fragmentation-sized share
        (0.001166, "0.00117"),  # k8s-default's: "0.001" hid a ten-fold difference
        (0.001255, "0.00126"),
        (0.0, "0.000"),
        (0.709, "0.709"),
        (1.0, "1.000"),
        (388.4, "388"),
    ],
)
def test_numbers_keep_three_significant_digits(value: float, shown: str) -> None:
    assert number_text(value) == shown
