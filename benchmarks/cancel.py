"""Cancel to free slot: from ``cancel()`` returning to a heartbeat showing the slot free.

Run ``.venv/bin/python -m benchmarks.cancel`` from the repo root against a
RabbitMQ (``--amqp-url``, default ``BOSON_TEST_AMQP_URL`` or
``amqp://guest:guest@127.0.0.1:5672/``).

Every service is its own OS process (``python -m boson run …``: monitor,
scheduler, balancer and one executor with ``--slots`` slots), heartbeats at
the default interval (1 s). For each handler mode (``--modes``: a process-mode
handler, killed with its process group; a thread-mode handler, which sees
``task.cancelled``), ``--cancels`` times: submit a task that would run a
minute, wait until its handler has started (it touches a file), then
``handle.cancel()``. The figure is the time from that call returning to the
arrival of the first heartbeat of the node whose ``free_slots`` shows every
slot free again (zero if one had arrived before the call returned). The call's
own duration is reported too. Prints median and p99 per mode, and exits 1 if
any cancel did not say ``cancelled`` or any p99 is above ``--target-p99-ms``.
Everything runs in a fresh namespace that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.soak import _sweep as sweep_namespace
from boson.client import Client
from boson_shared.bus.abc import Delivery
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import NodeHeartbeat
from boson_shared.contract.topology import BindingSpec, QueueSpec, Topology, rk_heartbeat
from tests.support.cluster import ProcessCluster

NODE = "cancel-bench"
HANDLERS = "tests.e2e.steering_handlers"
HANDLER_OF_MODE = {"process": "steer_process", "thread": "steer_thread", "async": "steer_async"}


class Heartbeats:
    """The node's heartbeats as they arrive, with their arrival times (monotonic)."""

    def __init__(self, transport: AmqpTransport, codec: EnvelopeCodec, names: Any) -> None:
        self.transport = transport
        self.codec = codec
        self.queue = names.subscriber_queue("cancel-bench", uuid.uuid4().hex[:8])
        self.topology = Topology(
            queues=(QueueSpec(self.queue, queue_type="classic", expires_ms=120_000),),
            bindings=(BindingSpec(self.queue, names.events_exchange, rk_heartbeat(NODE)),),
        )
        self.seen: list[tuple[float, NodeHeartbeat]] = []
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        await self.transport.declare(self.topology)
        await self.transport.consume(self.queue, self._on_delivery, prefetch=100)

    async def _on_delivery(self, delivery: Delivery) -> None:
        at = time.monotonic()
        await delivery.ack()
        for message in self.codec.decode(delivery.body):
            if isinstance(message, NodeHeartbeat):
                self.seen.append((at, message))
        self.arrived.set()

    async def free_after(self, since: float, slots: int, timeout: float) -> float:
        """Arrival time of the first heartbeat at or after ``since`` with every slot free."""
        async with asyncio.timeout(timeout):
            checked = 0
            while True:
                for at, beat in self.seen[checked:]:
                    if at >= since and beat.free_slots == slots:
                        return at
                checked = len(self.seen)
                self.arrived.clear()
                await self.arrived.wait()


def _has_started(marker_dir: Path, task_id: str) -> bool:
    return any(p.name.startswith(task_id) for p in marker_dir.iterdir())


async def _started(marker_dir: Path, task_id: str, timeout: float) -> None:
    """Until the task's handler has touched its start file (a poll: files have no event)."""
    deadline = time.monotonic() + timeout
    while not _has_started(marker_dir, task_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} did not start within {timeout:g}s")
        await asyncio.sleep(0.005)


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "median_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * p99, 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"cancel-bench-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="boson-cancel-bench-"))
    markers = log_dir / "starts"
    markers.mkdir()
    cluster = ProcessCluster(args.amqp_url, namespace, log_dir)
    # Production timings for what is measured: heartbeats once a second.
    cluster.extra_env.update(BOSON_HEARTBEAT_INTERVAL_S="1.0", BOSON_LOG_LEVEL="WARNING")
    try:
        for service in ("monitor", "scheduler", "balancer"):
            cluster.start(service)
        cluster.start(
            "executor",
            "--node-id",
            NODE,
            "--slots",
            str(args.slots),
            "--handler-module",
            HANDLERS,
            name=NODE,
        )
        await cluster.wait_healthy()
        settings = cluster.settings()
        client = await Client.connect(settings=settings)
        transport = AmqpTransport(args.amqp_url, connection_name="boson-cancel-bench")
        await transport.connect()
        codec = EnvelopeCodec.from_settings(settings, keyring=Keyring.from_settings(settings))
        beats = Heartbeats(transport, codec, settings.names())
        await beats.start()
        report: dict[str, Any] = {"slots": args.slots, "cancels_per_mode": args.cancels}
        try:
            async with asyncio.timeout(30):
                while not any((await client.snapshot(10)).nodes):
                    pass
            for mode in args.modes:
                handler = HANDLER_OF_MODE[mode]
                to_free: list[float] = []
                calls: list[float] = []
                outcomes: list[str] = []
                for _ in range(args.cancels):
                    params = {"seconds": 60, "starts": str(markers)}
                    handle = await client.submit(handler, params=params)
                    await _started(markers, handle.task_id, 60)
                    asked = time.monotonic()
                    outcomes.append(await handle.cancel())
                    returned = time.monotonic()
                    free = await beats.free_after(asked, args.slots, 30)
                    calls.append(returned - asked)
                    to_free.append(max(0.0, free - returned))
                    result = await handle.result(timeout=30)
                    assert result.status == "cancelled", result
                report[mode] = {
                    "cancel_to_free_slot": _summary(to_free),
                    "cancel_call": _summary(calls),
                    "not_cancelled": sum(1 for o in outcomes if o != "cancelled"),
                }
        finally:
            await client.delete_queues()
            await client.close()
            await transport.delete_queue(beats.queue)
            await transport.close()
        return report
    finally:
        await asyncio.to_thread(cluster.stop_all)
        with contextlib.suppress(Exception):
            await sweep_namespace(args.amqp_url, namespace)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("BOSON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--cancels", type=int, default=100, help="cancels per handler mode")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument(
        "--modes", nargs="+", default=["process", "thread"], choices=sorted(HANDLER_OF_MODE)
    )
    parser.add_argument("--target-p99-ms", type=float, default=1000.0)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = asyncio.run(measure(args))
    failures = []
    for mode in args.modes:
        figures = report[mode]
        free, call = figures["cancel_to_free_slot"], figures["cancel_call"]
        print(
            f"cancel: {mode:7} cancel→free slot median {free['median_ms']} ms, "
            f"p99 {free['p99_ms']} ms (max {free['max_ms']}); "
            f"cancel() itself median {call['median_ms']} ms, p99 {call['p99_ms']} ms"
        )
        if figures["not_cancelled"]:
            failures.append(f"{mode}: {figures['not_cancelled']} cancels not 'cancelled'")
        if free["p99_ms"] > args.target_p99_ms:
            failures.append(f"{mode}: p99 {free['p99_ms']} ms above {args.target_p99_ms:g} ms")
    print(json.dumps(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if failures:
        print(f"cancel: FAILED: {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
