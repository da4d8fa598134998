"""A service process's start-up heap leaves the collector's full passes once it has started."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from boson_shared.runtime.heap import freeze_once_started, freeze_start_up_heap


class Node:
    """A tracked object of the kind a service builds at start (it holds a cycle)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    """The test process shares its heap with every other test: thaw it after."""
    try:
        yield
    finally:
        gc.unfreeze()


def tracked(thing: object) -> bool:
    return any(o is thing for o in gc.get_objects())


def test_what_exists_is_frozen_what_comes_later_is_collected_as_before() -> None:
    before = Node()
    frozen = freeze_start_up_heap()
    assert frozen == gc.get_freeze_count() > 0
    assert not tracked(before)  # out of every generation the collector walks
    later = Node()
    assert tracked(later)


async def test_it_freezes_only_once_the_service_has_started() -> None:
    started = asyncio.Event()
    built = Node()
    freezing = asyncio.ensure_future(freeze_once_started(started))
    await asyncio.sleep(0.01)
    assert gc.get_freeze_count() == 0
    assert tracked(built)
    started.set()
    await asyncio.wait_for(freezing, 5)
    assert gc.get_freeze_count() > 0
    assert not tracked(built)
