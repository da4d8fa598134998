"""A second client process: reads task records by id through the bus.

Run as ``python -m tests.reliability.read_records`` with the cluster's
``BOSON_*`` environment and task ids on stdin, one a line. It submits
nothing; it asks the record for each id until every one is final (or the
deadline passes) and prints one JSON line per task.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from boson.client import Client
from boson_shared.contract.messages import TERMINAL_STATES, TaskRecord
from boson_shared.errors import RecordUnavailableError, TaskNotFoundError
from boson_shared.settings import BosonSettings

DEADLINE_S = 60.0
FINAL = TERMINAL_STATES


async def read(task_ids: list[str]) -> dict[str, TaskRecord | None]:
    client = await Client.connect(settings=BosonSettings())
    found: dict[str, TaskRecord | None] = dict.fromkeys(task_ids)
    deadline = time.monotonic() + DEADLINE_S
    try:
        async with client.records() as reader:
            while time.monotonic() < deadline:
                waiting = [
                    t for t, r in found.items() if r is None or r.state not in TERMINAL_STATES
                ]
                if not waiting:
                    break
                for task_id in waiting:
                    try:
                        found[task_id] = await reader.get(task_id, timeout=10)
                    except (TaskNotFoundError, RecordUnavailableError):
                        continue
                await asyncio.sleep(0.5)
    finally:
        await client.close()
    return found


def main() -> int:
    task_ids = [line.strip() for line in sys.stdin if line.strip()]
    for task_id, record in asyncio.run(read(task_ids)).items():
        if record is None:
            print(json.dumps({"task_id": task_id, "state": None}))
            continue
        print(
            json.dumps(
                {
                    "task_id": task_id,
                    "state": record.state,
                    "output": record.output,
                    "error_type": record.error.error_type if record.error else None,
                    "terminal_events": sum(
                        1 for e in record.timeline if e.stage in TERMINAL_STATES
                    ),
                    "stages": [e.stage for e in record.timeline],
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
