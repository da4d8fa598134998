"""Task record ingest rate: lifecycle events written per second, SQLite and PostgreSQL.

Run ``.venv/bin/python -m benchmarks.record_ingest`` from the repo root
(under the benchmark lock). For each database it makes a fresh record
(a temporary SQLite file; a fresh PostgreSQL database, created and dropped,
from ``--postgres`` which must be allowed to create databases), then writes
``--tasks`` tasks' lifecycles — placed (with the task's inputs), assigned,
started and the result: four events a task, as the services report them — as
the monitor does: ``--writers`` concurrent deliveries of ``--envelope``
events each, through one group commit. It prints events/s, tasks/s and the
mean events per transaction. ``--repeats`` runs alternate the databases.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from boson_shared.contract.messages import (
    ResourceVector,
    TaskResult,
    TaskSubmitted,
    TaskUsage,
    task_event,
)
from boson_shared.record.group_commit import GroupCommit
from boson_shared.record.merge import RecordEvent
from boson_shared.record.store import RecordStore
from tests.support.database import create_database, drop_database

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
EVENTS_PER_TASK = 4


def lifecycle(task_id: str, at: float) -> list[RecordEvent]:
    task = TaskSubmitted(
        task_id=task_id, handler="noop", reply_to="bench", data=b"x" * 64, submitted_at=at
    )
    demand = ResourceVector(cpu=1.0, memory=1.0)
    return [
        task_event(
            task,
            "placed",
            "scheduler",
            message_id=f"{task_id}.placed.ev",
            inputs=True,
            node_id="n1",
            strategy="binpack",
            demand=demand,
        ),
        task_event(
            task, "assigned", "balancer", message_id=f"{task_id}.a1.ev", node_id="n1", dispatch=1
        ),
        task_event(
            task, "started", "executor", message_id=f"{task_id}.s1.1", node_id="n1", attempt=1
        ),
        TaskResult(
            message_id=f"{task_id}.result",
            task_id=task_id,
            handler="noop",
            status="succeeded",
            output={"ok": True},
            node_id="n1",
            usage=TaskUsage(wall_s=0.001, cpu_s=0.001, peak_memory_bytes=0),
            reply_to="bench",
            submitted_at=at,
        ),
    ]


async def ingest_rate(url: str, tasks: int, writers: int, envelope: int) -> tuple[float, float]:
    """(events/s, events per transaction) of one run on a fresh record at ``url``."""
    store = RecordStore.open(url)
    await store.migrate()
    now = time.time()
    # As the services publish them: a task's steps spread over envelopes,
    # many tasks' events in each.
    events = [e for k in range(tasks) for e in lifecycle(f"t{k:07d}", now + k * 1e-4)]
    events.sort(key=lambda e: (isinstance(e, TaskResult), e.message_id[-6:]))
    envelopes = [events[i : i + envelope] for i in range(0, len(events), envelope)]
    commits: GroupCommit[RecordEvent] = GroupCommit(store.ingest, max_items=2000)
    queue: asyncio.Queue[Sequence[RecordEvent]] = asyncio.Queue()
    for item in envelopes:
        queue.put_nowait(item)

    async def writer() -> None:
        while not queue.empty():
            await commits.write(queue.get_nowait())

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(writers):
            group.create_task(writer())
    elapsed = time.perf_counter() - started
    assert await store.count("succeeded") == tasks
    await store.close()
    return len(events) / elapsed, commits.items / max(1, commits.flushes)


async def bench(args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    per_tx: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    for round_no in range(args.repeats):
        order = ["sqlite", "postgresql"] if round_no % 2 == 0 else ["postgresql", "sqlite"]
        for backend in order:
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as directory:
                    url = f"sqlite:///{Path(directory) / 'records.sqlite3'}"
                    rate, batch = await ingest_rate(url, args.tasks, args.writers, args.envelope)
            else:
                url = await create_database(args.postgres, f"boson_bench_{uuid.uuid4().hex[:6]}")
                try:
                    rate, batch = await ingest_rate(url, args.tasks, args.writers, args.envelope)
                finally:
                    await drop_database(args.postgres, url)
            rates[backend].append(rate)
            per_tx[backend].append(batch)
            print(
                f"round {round_no + 1} {backend}: {rate:,.0f} events/s "
                f"({rate / EVENTS_PER_TASK:,.0f} tasks/s), {batch:.0f} per tx"
            )
    for backend, values in rates.items():
        print(
            f"{backend}: median {statistics.median(values):,.0f} events/s "
            f"({statistics.median(values) / EVENTS_PER_TASK:,.0f} tasks/s) "
            f"(min {min(values):,.0f}, max {max(values):,.0f}; "
            f"{statistics.median(per_tx[backend]):.0f} events per transaction)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=64, help="deliveries in flight")
    parser.add_argument("--envelope", type=int, default=100, help="events per delivery")
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(bench(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
