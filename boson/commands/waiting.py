"""Waiting for results on the command line: as they arrive, bounded, interruptible.

Each result prints the moment it arrives (completion order, once each). The
wait ends when every result is in, when ``--wait-timeout`` passes, or on
Ctrl-C; the caller then says what finished and what did not. A second Ctrl-C
exits at once.

On a terminal a progress display runs below the results: one task's own
progress (what its handler reports with ``task.progress``), or, for many
(``--count``), the whole run's — finished tasks plus the reported fractions
of those still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from boson.client import Client
from boson_shared.contract.messages import TaskResult, TaskRetrying

INTERRUPTED_EXIT = 130
REFRESH_S = 0.25
"""How often the progress display takes the latest reports."""


@dataclass
class Outcome:
    """What a wait saw: the results in arrival order and the ids still out."""

    results: list[TaskResult] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    interrupted: bool = False
    timed_out: bool = False

    @property
    def all_succeeded(self) -> bool:
        return not self.pending and all(r.status == "succeeded" for r in self.results)


def format_result(result: TaskResult, as_json: bool) -> str:
    """One result as the user reads it (a user's traceback indented below its line)."""
    if as_json:
        return json.dumps(result.model_dump(mode="json", exclude={"kind"}))
    if result.status == "succeeded":
        return f"{result.task_id} succeeded on {result.node_id}: {json.dumps(result.output)}"
    if result.status == "cancelled":
        where = f" on {result.node_id}" if result.node_id else ""
        return f"{result.task_id} cancelled{where}"
    assert result.error is not None
    first, *rest = result.error.message.splitlines() or [""]
    line = (
        f"{result.task_id} failed after {result.attempts} attempt(s): "
        f"{result.error.error_type}: {first}"
    )
    return "\n".join([line, *(f"    {more}" for more in rest)])


def show_retry(news: TaskRetrying) -> None:
    """A retry as it happens, one line on stderr."""
    first = news.error.message.splitlines()[0] if news.error.message else ""
    where = f" on {news.node_id}" if news.node_id else ""
    print(
        f"boson: {news.task_id} attempt {news.attempt} failed{where}: "
        f"{news.error.error_type}: {first}; retrying in {news.retry_in_s:g} s",
        file=sys.stderr,
        flush=True,
    )


@contextlib.contextmanager
def interruptible(on_first: Callable[[], None]) -> Iterator[None]:
    """Within it, Ctrl-C calls ``on_first``; a second one exits the process at once.

    Wrap the whole command (its clean-up too), so that a user who presses
    Ctrl-C again while it tidies up is not kept waiting.
    """
    loop = asyncio.get_running_loop()
    hits = 0

    def interrupt() -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            sys.stdout.flush()
            os._exit(INTERRUPTED_EXIT)
        on_first()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    except (NotImplementedError, RuntimeError):  # not the main thread (tests)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _show(
    client: Client, result: TaskResult, waiting: set[str], outcome: Outcome, as_json: bool
) -> bool:
    """Print ``result`` if it is one being waited for (and not yet shown)."""
    if result.task_id not in waiting:
        return False
    waiting.discard(result.task_id)
    result = await client.result(result.task_id)
    client.take_result(result.task_id)
    outcome.results.append(result)
    print(format_result(result, as_json), flush=True)
    return True


async def collect(
    client: Client,
    arrivals: asyncio.Queue[TaskResult],
    task_ids: list[str],
    *,
    as_json: bool,
    wait_timeout: float | None,
    stop: asyncio.Event,
) -> Outcome:
    """Print each result of ``task_ids`` as it arrives, until all are in or the wait ends.

    ``stop`` (set by Ctrl-C, see :func:`interruptible`) ends the wait early.
    """
    outcome = Outcome()
    waiting = set(task_ids)
    deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
    show = not as_json and sys.stderr.isatty()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show,
    ) as progress:
        display = _Display(client, progress, task_ids, enabled=show)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while waiting and not stop.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    outcome.timed_out = True
                    break
                arrived = asyncio.ensure_future(arrivals.get())
                tick = REFRESH_S if left is None else min(left, REFRESH_S)
                await asyncio.wait({arrived, stopped}, timeout=tick, return_when="FIRST_COMPLETED")
                if not arrived.done():
                    arrived.cancel()
                    display.refresh(waiting)
                    continue
                if await _show(client, arrived.result(), waiting, outcome, as_json):
                    display.refresh(waiting)
            # Interrupted: what has already arrived is shown too.
            while waiting and not arrivals.empty():
                await _show(client, arrivals.get_nowait(), waiting, outcome, as_json)
        finally:
            stopped.cancel()
    outcome.interrupted = stop.is_set() and bool(waiting)
    outcome.pending = [task_id for task_id in task_ids if task_id in waiting]
    return outcome


class _Display:
    """The progress display: one task's own bar, or the whole run's."""

    def __init__(
        self, client: Client, progress: Progress, task_ids: list[str], *, enabled: bool
    ) -> None:
        self.enabled = enabled
        self.client = client
        self.progress = progress
        self.total = len(task_ids)
        self.single = task_ids[0] if len(task_ids) == 1 else None
        description = self.single if self.single is not None else f"{self.total} tasks"
        self.bar: TaskID = progress.add_task(description, total=self.total, note="")

    def refresh(self, waiting: set[str]) -> None:
        if not self.enabled:
            return
        partial = 0.0
        note = ""
        for task_id in waiting:
            report = self.client.latest_progress(task_id)
            if report is not None:
                partial += report.fraction
                note = report.message
        done = self.total - len(waiting)
        if self.single is None:
            note = f"{done} of {self.total} done"
        self.progress.update(self.bar, completed=done + partial, note=note)


__all__ = [
    "INTERRUPTED_EXIT",
    "Outcome",
    "collect",
    "format_result",
    "interruptible",
    "show_retry",
]
