"""The bounded memory of handled message ids."""

from __future__ import annotations

import pytest

from shared.runtime.dedup import SeenIds


def test_remembers_what_it_was_told() -> None:
    seen = SeenIds(3)
    seen.add("a")
    assert "a" in seen
    assert "b" not in seen
    assert len(seen) == 1


def test_forgets_the_oldest_first_and_stays_bounded() -> None:
    seen = SeenIds(3)
    for message_id in ("a", "b", "c", "d"):
        seen.add(message_id)
    assert "a" not in seen
    assert all(m in seen for m in ("b", "c", "d"))
    for number in range(1000):
        seen.add(f"x{number}")
    assert len(seen) == 3


def test_adding_again_makes_an_id_the_newest() -> None:
    seen = SeenIds(3)
    for message_id in ("a", "b", "c"):
        seen.add(message_id)
    seen.add("a")
    seen.add("d")
    assert "a" in seen
    assert "b" not in seen


def test_discard_forgets_one_id_and_ignores_unknown_ones() -> None:
    seen = SeenIds(3)
    seen.add("a")
    seen.discard("a")
    seen.discard("never-seen")
    assert "a" not in seen
    assert len(seen) == 0


def test_non_string_lookups_are_simply_absent() -> None:
    seen = SeenIds(1)
    seen.add("1")
    assert 1 not in seen


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SeenIds(0)
