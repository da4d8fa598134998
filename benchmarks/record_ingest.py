"""Task record ingest rate: lifecycle events written per second, SQLite and PostgreSQL.

Run ``.venv/bin/python -m benchmarks.record_ingest`` from the repo root
(under the benchmark lock). For each database it makes a fresh record
(a temporary SQLite file; a fresh PostgreSQL database, created and dropped,
from ``--postgres`` which must be allowed to create databases), then writes
``--tasks`` tasks' lifecycles — placed (with the task's inputs), assigned,
started and the result: four events a task, as the services report them — as
the monitor does: ``--writers`` concurrent deliveries of ``--envelope``
events each, through one group commit. Each delivery is an encrypted
envelope that the writer decodes first, as the monitor's consumer does (all
but the AMQP frames). It prints events/s, tasks/s, the mean events per
transaction and this process's CPU per event (the monitor's share; the
database server's is not in it). ``--repeats`` runs alternate the
databases; ``--profile DIR`` writes a cProfile of each run there and prints
the first one's heaviest calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    ResourceVector,
    TaskEvent,
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


@dataclass
class Run:
    rate: float
    """Events per second."""
    per_transaction: float
    cpu_us_per_event: float


async def ingest_rate(
    url: str, tasks: int, writers: int, envelope: int, profile: Path | None = None
) -> Run:
    """One run on a fresh record at ``url``."""
    store = RecordStore.open(url)
    await store.migrate()
    now = time.time()
    # As the services publish them: a task's steps spread over envelopes,
    # many tasks' events in each.
    events = [e for k in range(tasks) for e in lifecycle(f"t{k:07d}", now + k * 1e-4)]
    events.sort(key=lambda e: (isinstance(e, TaskResult), e.message_id[-6:]))
    codec = EnvelopeCodec(Keyring.ephemeral())
    bodies = [
        codec.encode(chunk)
        for kind in (TaskEvent, TaskResult)
        for group in [[e for e in events if isinstance(e, kind)]]
        for chunk in (group[i : i + envelope] for i in range(0, len(group), envelope))
    ]
    commits: GroupCommit[RecordEvent] = GroupCommit(store.ingest, max_items=2000)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def writer() -> None:
        while not queue.empty():
            decoded = codec.decode(queue.get_nowait())
            await commits.write([m for m in decoded if isinstance(m, TaskEvent | TaskResult)])

    profiler = cProfile.Profile() if profile is not None else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    async with asyncio.TaskGroup() as group:
        for _ in range(writers):
            group.create_task(writer())
    if profiler is not None:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    assert await store.count("succeeded") == tasks
    await store.close()
    return Run(
        len(events) / elapsed,
        commits.items / max(1, commits.flushes),
        cpu / len(events) * 1e6,
    )


async def bench(args: argparse.Namespace) -> None:
    runs: dict[str, list[Run]] = {"sqlite": [], "postgresql": []}
    profiles = Path(args.profile) if args.profile else None
    if profiles is not None:
        profiles.mkdir(parents=True, exist_ok=True)
    for round_no in range(args.repeats):
        order = ["sqlite", "postgresql"] if round_no % 2 == 0 else ["postgresql", "sqlite"]
        for backend in order:
            profile = profiles / f"{backend}-{round_no + 1}.prof" if profiles else None
            options = (args.tasks, args.writers, args.envelope, profile)
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as directory:
                    url = f"sqlite:///{Path(directory) / 'records.sqlite3'}"
                    run = await ingest_rate(url, *options)
            else:
                url = await create_database(args.postgres, f"boson_bench_{uuid.uuid4().hex[:6]}")
                try:
                    run = await ingest_rate(url, *options)
                finally:
                    await drop_database(args.postgres, url)
            runs[backend].append(run)
            print(
                f"round {round_no + 1} {backend}: {run.rate:,.0f} events/s "
                f"({run.rate / EVENTS_PER_TASK:,.0f} tasks/s), {run.per_transaction:.0f} per tx, "
                f"CPU {run.cpu_us_per_event:.0f} µs/event",
                flush=True,
            )
            if profile is not None and round_no == 0:
                print(f"--- {backend}: heaviest calls (cumulative), {profile}")
                pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(25)
    for backend, done in runs.items():
        rates = [r.rate for r in done]
        print(
            f"{backend}: median {statistics.median(rates):,.0f} events/s "
            f"({statistics.median(rates) / EVENTS_PER_TASK:,.0f} tasks/s) "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f}; "
            f"{statistics.median(r.per_transaction for r in done):.0f} events per transaction; "
            f"CPU {statistics.median(r.cpu_us_per_event for r in done):.0f} µs/event)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=64, help="deliveries in flight")
    parser.add_argument("--envelope", type=int, default=100, help="events per delivery")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of each run to this directory")
    asyncio.run(bench(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
