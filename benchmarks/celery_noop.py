"""The Celery side of ``benchmarks/pipeline.py``: a no-op task and an open-loop client.

The worker runs as ``celery -A benchmarks.celery_noop worker --pool prefork
--concurrency 2``; the client runs as ``python -m benchmarks.celery_noop``
in a process of its own (Celery's client is synchronous) and prints one JSON
line: when each task was due and when its result arrived. Broker URL and
queue name come from ``BENCH_CELERY_BROKER`` / ``BENCH_CELERY_QUEUE``, so
the benchmark's namespace owns the queue. Needs the ``bench`` extra.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from celery import Celery

BROKER = os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench-celery")

app = Celery("boson_bench", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    result_persistent=False,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    return None


def open_loop(count: int, rate: float) -> dict[str, Any]:
    """Send ``count`` tasks at ``rate``/s (open loop); collect every result."""
    due: list[float] = []
    done: dict[int, float] = {}
    consumer = app.backend.result_consumer
    start = time.perf_counter()
    sent = 0

    def fulfilled(index: int) -> Any:
        def callback(_: Any) -> None:
            done[index] = time.perf_counter()

        return callback

    while sent < count or len(done) < count:
        now = time.perf_counter()
        target = min(count, int((now - start) * rate) + 1)
        while sent < target:
            due.append(start + sent / rate)
            result = noop.apply_async()
            result.then(fulfilled(sent))
            sent += 1
        if len(done) < sent:
            try:
                consumer.drain_events(timeout=0.001 if sent < count else 0.05)
            except TimeoutError:
                pass
            except OSError as error:  # socket.timeout on older kombu
                if "timed out" not in str(error):
                    raise
        if time.perf_counter() - start > 300:
            break
    return {"due": due, "done": [done.get(i) for i in range(count)]}


def main() -> int:
    count, rate = int(sys.argv[1]), float(sys.argv[2])
    # A first round trip opens the result consumer before timing starts.
    noop.apply_async().get(timeout=60)
    print(json.dumps(open_loop(count, rate)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
