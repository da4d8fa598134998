"""The cancel flow both brokers run: 1,000 tasks, 100 of them cancelled at random moments.

Half of the cancelled tasks would run for half a minute (so a cancel finds
them queued or running, never finished); the other half are as short as the
rest (a cancel may find them queued, running or already finished). Cancels
go out in small batches at random moments over the first seconds of the run.
Every handler records each start as a file; the process-mode ones write their
own pid and their child's.

Then :func:`check` holds the run to the issue's promises: one result per
task, matching its record's one terminal state; a cancel's answer matching the
outcome; a task cancelled before any executor started it (no ``started`` in its
record) never ran; no process of a cancelled process-mode task still alive.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from boson.client import Client, TaskHandle, TaskRequest
from boson.records import RecordReader
from boson.steering import CancelOutcome
from boson_shared.contract.messages import TERMINAL_STATES, TaskRecord, TaskResult

TASKS = 1000
CANCELLED = 100
LONG_S = 30.0
"""A cancelled-to-be task that would run this long: a cancel never finds it finished."""
BATCHES = 25
SPREAD_S = 6.0
"""Cancels go out at random moments within this many seconds of the submission."""


@dataclass
class Run:
    """What one run of the flow did and saw."""

    starts_dir: Path
    pids_dir: Path
    handles: list[TaskHandle] = field(default_factory=list)
    cancelled_ids: list[str] = field(default_factory=list)
    long_ids: set[str] = field(default_factory=set)
    process_ids: set[str] = field(default_factory=set)
    outcomes: dict[str, CancelOutcome] = field(default_factory=dict)
    results: dict[str, TaskResult] = field(default_factory=dict)
    took_s: float = 0.0

    def starts(self) -> Counter[str]:
        return Counter(path.name.split(".", 1)[0] for path in self.starts_dir.iterdir())


def requests(run: Run, rng: random.Random) -> list[TaskRequest]:
    """The tasks: short thread-mode ones, and the long ones among those to cancel."""
    to_cancel = set(rng.sample(range(TASKS), CANCELLED))
    long_ones = set(rng.sample(sorted(to_cancel), CANCELLED // 2))
    made: list[TaskRequest] = []
    starts = str(run.starts_dir)
    for k in range(TASKS):
        task_id = f"flow-{k:04d}-{rng.randrange(16**6):06x}"
        if k in to_cancel:
            run.cancelled_ids.append(task_id)
        if k in long_ones:
            run.long_ids.add(task_id)
            # A mix of modes among the long ones: threads, coroutines, processes.
            kind = len(run.long_ids) % 4
            if kind == 0:
                run.process_ids.add(task_id)
                params = {"seconds": LONG_S, "starts": starts, "pids": str(run.pids_dir)}
                made.append(TaskRequest("steer_process", params=params, task_id=task_id))
                continue
            handler = "steer_async" if kind == 1 else "steer_thread"
            params = {"seconds": LONG_S, "starts": starts}
            made.append(TaskRequest(handler, params=params, task_id=task_id))
            continue
        params = {"seconds": rng.uniform(0.002, 0.02), "starts": starts}
        made.append(TaskRequest("steer_thread", params=params, task_id=task_id))
    rng.shuffle(run.cancelled_ids)
    return made


async def warm_up(client: Client) -> list[str]:
    """Process-mode tasks first, so that the executors' worker processes are up; their ids."""
    handles = await client.submit_many(
        [TaskRequest("steer_process", params={"seconds": 0}) for _ in range(8)]
    )
    for handle in handles:
        assert (await handle.result(timeout=60)).status == "succeeded"
    return [handle.task_id for handle in handles]


async def execute(client: Client, tmp_path: Path, *, seed: int, timeout: float) -> Run:
    """Submit the tasks, cancel a hundred at random moments, gather every result."""
    rng = random.Random(seed)
    run = Run(tmp_path / "starts", tmp_path / "pids")
    run.starts_dir.mkdir()
    run.pids_dir.mkdir()
    batch = requests(run, rng)
    started = time.monotonic()
    run.handles = await client.submit_many(batch)
    per_batch = len(run.cancelled_ids) // BATCHES

    async def cancel_later(ids: list[str], delay: float) -> None:
        await asyncio.sleep(delay)
        run.outcomes.update(await client.cancel(*ids, timeout=30))

    await asyncio.gather(
        *(
            cancel_later(run.cancelled_ids[i : i + per_batch], rng.uniform(0, SPREAD_S))
            for i in range(0, len(run.cancelled_ids), per_batch)
        )
    )
    async with asyncio.timeout(timeout):
        for handle in run.handles:
            run.results[handle.task_id] = await handle.result()
    run.took_s = time.monotonic() - started
    return run


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def check(run: Run, reader: RecordReader) -> dict[str, int]:
    """Every promise of the flow (see the module docstring); a few figures of the run."""
    cancelled = set(run.cancelled_ids)
    assert set(run.outcomes) == cancelled
    assert "unknown" not in run.outcomes.values()
    for task_id, result in run.results.items():
        if task_id not in cancelled:
            assert result.status == "succeeded", (task_id, result)
            continue
        outcome = run.outcomes[task_id]
        expected = "cancelled" if outcome == "cancelled" else "succeeded"
        assert result.status == expected, (task_id, outcome, result.status)
    assert all(run.results[t].status == "cancelled" for t in run.long_ids)

    starts = run.starts()
    assert max(starts.values()) == 1, "a task ran twice"
    queued = running = 0
    ids = list(run.results)
    records: dict[str, TaskRecord] = {}
    for first in range(0, len(ids), 100):  # a hundred questions to the record at a time
        chunk = ids[first : first + 100]
        found = await asyncio.gather(*(reader.get(t) for t in chunk))
        records.update(zip(chunk, found, strict=True))
    for task_id, result in run.results.items():
        record = records[task_id]
        assert record.state == result.status, (task_id, record.state, result.status)
        terminal = [e.stage for e in record.timeline if e.stage in TERMINAL_STATES]
        assert terminal == [result.status], (task_id, terminal)
        if result.status != "cancelled":
            assert starts[task_id] == 1, task_id
            continue
        if "started" in {e.stage for e in record.timeline}:
            running += 1
        else:
            # Cancelled before any executor gave it a slot: it never ran.
            assert starts[task_id] == 0, (task_id, "started after its cancel")
            queued += 1

    deadline = time.monotonic() + 10
    pids = [int(pid) for path in run.pids_dir.iterdir() for pid in path.read_text().split() if pid]
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a cancelled process-mode task's process survived"
        await asyncio.sleep(0.1)
    return {
        "tasks": len(run.results),
        "cancel_requested": len(cancelled),
        "cancelled": sum(1 for r in run.results.values() if r.status == "cancelled"),
        "already_finished": sum(1 for o in run.outcomes.values() if o == "already-finished"),
        "cancelled_while_queued": queued,
        "cancelled_while_running": running,
        "process_pids_checked": len(pids),
    }


__all__ = ["CANCELLED", "TASKS", "Run", "check", "execute", "warm_up"]
