"""Where the task record's ingestion spends the monitor's CPU, stage by stage.

Run ``.venv/bin/python -m benchmarks.record_stages`` from the repo root
(under the benchmark lock). It makes ``--tasks`` tasks' lifecycles as the
services report them (:func:`benchmarks.record_ingest.lifecycle`), encodes
them in envelopes of ``--envelope`` events of one stage, then decodes every
envelope and ingests them ``--per-transaction`` events at a time into a
fresh record (a temporary SQLite file, or a fresh PostgreSQL database from
``--postgres``). It prints this process's CPU time per task for decoding,
for the whole of ingestion, and for each kind of statement inside it — CPU
time, not wall time, so the database server's own work is not in it
(except SQLite's, which runs in this process). One stage per envelope is
the hard case: each task's row is written once per stage.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from benchmarks.record_ingest import DEFAULT_POSTGRES, lifecycle
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskEvent, TaskResult
from boson_shared.record.store import RecordStore
from tests.support.database import create_database, drop_database

spent: collections.defaultdict[str, float] = collections.defaultdict(float)


def timed(label: Callable[..., str], method: Callable[..., Awaitable[Any]]) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return await method(*args, **kwargs)
        finally:
            spent[label(*args)] += time.process_time() - started

    return wrapper


def statement_kind(_conn: object, statement: object, *_rest: object) -> str:
    return "  statement " + str(statement).split(None, 1)[0].upper()


async def stages(url: str, tasks: int, envelope: int, per_transaction: int) -> None:
    store = RecordStore.open(url)
    await store.migrate()
    try:
        events = [e for k in range(tasks) for e in lifecycle(f"t{k:07d}", 1e9 + k)]
        events.sort(key=lambda e: (isinstance(e, TaskResult), e.message_id[-6:]))
        codec = EnvelopeCodec(Keyring.ephemeral())
        bodies = [codec.encode(events[i : i + envelope]) for i in range(0, len(events), envelope)]
        del events
        # Decoded a transaction's worth at a time and then dropped, as in the
        # monitor: holding every decoded event at once would time the
        # garbage collector walking them, not the decoding.
        step = max(1, per_transaction // envelope)
        for start in range(0, len(bodies), step):
            began = time.process_time()
            batch = [
                m
                for body in bodies[start : start + step]
                for m in codec.decode(body)
                if isinstance(m, TaskEvent | TaskResult)
            ]
            spent["decode"] += time.process_time() - began
            await store.ingest(batch)
        assert await store.count("succeeded") == tasks
    finally:
        await store.close()


async def bench(args: argparse.Namespace) -> None:
    RecordStore.ingest = timed(lambda *_: "ingest", RecordStore.ingest)  # type: ignore[method-assign]
    AsyncConnection.execute = timed(statement_kind, AsyncConnection.execute)  # type: ignore[method-assign]
    AsyncConnection.exec_driver_sql = timed(  # type: ignore[method-assign]
        statement_kind, AsyncConnection.exec_driver_sql
    )
    options = (args.tasks, args.envelope, args.per_transaction)
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            await stages(f"sqlite:///{Path(directory) / 'records.sqlite3'}", *options)
    else:
        url = await create_database(args.postgres, f"boson_bench_{uuid.uuid4().hex[:6]}")
        try:
            await stages(url, *options)
        finally:
            await drop_database(args.postgres, url)
    print(f"{args.database}, {args.tasks} tasks: CPU µs per task")
    for label in ("decode", "ingest"):
        print(f"{label:<22} {spent.pop(label, 0.0) / args.tasks * 1e6:8.1f}")
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"{label:<22} {seconds / args.tasks * 1e6:8.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--envelope", type=int, default=100, help="events per envelope")
    parser.add_argument("--per-transaction", type=int, default=2000)
    asyncio.run(bench(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
