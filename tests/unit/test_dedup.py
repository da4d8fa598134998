"""The bounded memory of handled message ids."""

from __future__ import annotations

import tracemalloc
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boson_shared.runtime.dedup import SeenIds


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


class LruModel:
    """The contract, written plainly: an ordered dict of the newest ids."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ids: OrderedDict[str, None] = OrderedDict()

    def add(self, message_id: str) -> None:
        self.ids[message_id] = None
        self.ids.move_to_end(message_id)
        if len(self.ids) > self.capacity:
            self.ids.popitem(last=False)

    def discard(self, message_id: str) -> None:
        self.ids.pop(message_id, None)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=12),
    operations=st.lists(
        st.tuples(st.sampled_from(["add", "discard"]), st.integers(min_value=0, max_value=30)),
        max_size=400,
    ),
)
def test_behaves_like_an_lru_of_ids(capacity: int, operations: list[tuple[str, int]]) -> None:
    seen, model = SeenIds(capacity), LruModel(capacity)
    for operation, number in operations:
        message_id = f"m{number}"
        getattr(seen, operation)(message_id)
        getattr(model, operation)(message_id)
        assert len(seen) == len(model.ids)
    for number in range(31):
        assert (f"m{number}" in seen) == (f"m{number}" in model.ids)


def test_memory_is_allocated_once() -> None:
    # A service's resident memory must not climb as ids arrive: everything
    # the memory needs is allocated when it is made.
    ids = [f"id-{number:08d}" for number in range(50_000)]
    tracemalloc.start()
    try:
        seen = SeenIds(10_000)
        before = tracemalloc.get_traced_memory()[0]
        for number, message_id in enumerate(ids):
            seen.add(message_id)
            if number % 7 == 0:
                seen.discard(ids[number - 3])
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"grew by {grown} bytes"
    assert len(seen) <= 10_000
    assert ids[-1] in seen
    assert ids[0] not in seen
