"""A service process's start-up heap, kept out of the cyclic collector's full passes.

A service imports its modules, builds its settings, codecs, models and
endpoints once, then runs for days. Those objects (a couple of hundred
thousand in the monitor with its dashboard) never become garbage, yet every
full (generation 2) collection walks them all, stopping every thread of the
process while it does. Once the service has started, :func:`freeze_start_up_heap`
collects once and moves what is left into the permanent generation
(:func:`gc.freeze`), so later full passes walk only what the service built
since: its per-node state, its caches. Objects frozen are still freed by
reference counting; only a reference cycle among them would never be
collected, which start-up state does not form.

Only a process that runs one service does this (``boson run <service>``):
the in-process cluster and the tests share their heap with other work.
"""

from __future__ import annotations

import asyncio
import gc
import logging

logger = logging.getLogger(__name__)


def freeze_start_up_heap() -> int:
    """Collect once, then freeze every object the collector tracks; how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def freeze_once_started(started: asyncio.Event) -> None:
    """Freeze the heap as soon as ``started`` is set."""
    await started.wait()
    frozen = freeze_start_up_heap()
    logger.debug("start-up heap frozen: %d objects out of the collector's full passes", frozen)


__all__ = ["freeze_once_started", "freeze_start_up_heap"]
