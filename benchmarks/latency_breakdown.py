"""Where a task's latency goes, hop by hop, at the rates you name.

Run ``.venv/bin/python -m benchmarks.latency_breakdown --rates 20 1000`` from
the repo root (needs the ``bench`` extra and a RabbitMQ; ``--amqp-url``).

It starts the same Boson cluster as :mod:`benchmarks.pipeline` (every
service its own process, two executors) and offers no-op tasks open loop at
each rate. Every message a task becomes carries the wall-clock time the
service made it — ``TaskSubmitted.submitted_at`` (client),
``TaskPlaced.placed_at`` (scheduler), ``TaskAssigned.assigned_at``
(balancer), ``TaskResult.finished_at`` (executor) — so the gaps between
them are the hops: each one publishing (batching, confirm window), the
broker, the next service receiving, decoding and handling. Taps (classic
queues bound beside the real ones) collect the placed and assigned
envelopes; they are decoded after the run, so the taps cost the client only
the deliveries. The last hop ends when the client's consumer sees the
result. All processes share one clock (one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from benchmarks.pipeline import DEFAULT_URL, BosonSystem, cleanup, open_loop, percentile
from shared.contract.codec import EnvelopeCodec
from shared.contract.messages import TaskAssigned, TaskPlaced, TaskResult
from shared.contract.topology import RK_PLACED, rk_node
from shared.runtime.consumer import Emit

STAMPS = ("submitted", "placed", "assigned", "finished", "at client")
HOPS = (
    "client → scheduler",
    "scheduler → balancer",
    "balancer → executor (incl. running)",
    "executor → client",
)


class Taps:
    """Envelopes copied from the placed and assigned hops, with their arrival."""

    def __init__(self, url: str, namespace: str, work_exchange: str) -> None:
        self.url = url
        self.names = [f"{namespace}.breakdown-placed", f"{namespace}.breakdown-assigned"]
        self.keys = [RK_PLACED, rk_node("*")]
        self.work_exchange = work_exchange
        self.bodies: list[bytes] = []
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect_robust(self.url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=1000)
        for name, key in zip(self.names, self.keys, strict=True):
            queue = await channel.declare_queue(name, auto_delete=True)
            await queue.bind(self.work_exchange, key)
            await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.bodies.append(message.body)
        await message.ack()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


async def breakdown(
    system: BosonSystem, taps: Taps, codec: EnvelopeCodec, rate: float, seconds: float
) -> None:
    client = system.client
    assert client is not None
    seen_by_client: dict[str, float] = {}
    stamps: dict[str, dict[str, float]] = {}
    taps.bodies.clear()
    original = client._on_result

    async def on_result(result: TaskResult) -> Sequence[Emit]:
        seen_by_client.setdefault(result.task_id, time.time())
        stamps.setdefault(result.task_id, {}).update(
            submitted=result.submitted_at, finished=result.finished_at
        )
        return await original(result)

    client._on_result = on_result  # type: ignore[method-assign]
    try:
        run = await open_loop(system, max(1, int(rate * seconds)), rate, timeout=60)
        await asyncio.sleep(0.5)  # the taps' last copies
    finally:
        client._on_result = original  # type: ignore[method-assign]
    for body in taps.bodies:
        for message in codec.decode(body):
            if isinstance(message, TaskPlaced):
                stamps.setdefault(message.task.task_id, {})["placed"] = message.placed_at
            elif isinstance(message, TaskAssigned):
                stamps.setdefault(message.task.task_id, {})["assigned"] = message.assigned_at
    for task_id, when in seen_by_client.items():
        stamps[task_id]["at client"] = when
    complete = [s for s in stamps.values() if all(k in s for k in STAMPS)]
    latencies = run.latencies_ms()
    print(
        f"\n{rate:g} tasks/s: {len(latencies)} results, submit → result (from when due) "
        f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms; "
        f"{len(complete)} tasks with every stamp"
    )
    print(f"  {'hop':<38}{'p50':>8}{'p90':>8}{'p99':>8}  ms")
    for hop, start, end in zip(HOPS, STAMPS, STAMPS[1:], strict=False):
        gaps = [1000 * (s[end] - s[start]) for s in complete]
        print(
            f"  {hop:<38}{percentile(gaps, 50):8.1f}{percentile(gaps, 90):8.1f}"
            f"{percentile(gaps, 99):8.1f}"
        )
    total = [1000 * (s["at client"] - s["submitted"]) for s in complete]
    print(
        f"  {'submitted → at client':<38}{percentile(total, 50):8.1f}"
        f"{percentile(total, 90):8.1f}{percentile(total, 99):8.1f}"
    )


async def main_async(args: argparse.Namespace) -> int:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    system = BosonSystem(args.amqp_url, namespace, Path(tempfile.mkdtemp(prefix="boson-bd-")), 2)
    settings_env = dict(item.split("=", 1) for item in args.set)
    system.variant = settings_env
    system.cluster.extra_env.update(settings_env)
    taps: Taps | None = None
    try:
        await system.start()
        settings = system.cluster.settings()
        codec = EnvelopeCodec.from_settings(settings)
        taps = Taps(args.amqp_url, namespace, settings.names().work_exchange)
        await taps.start()
        await open_loop(system, 500, 250, timeout=30)  # warm up
        print(
            f"latency breakdown: namespace {namespace}, {os.cpu_count()} cores, "
            f"settings {settings_env or 'default'}"
        )
        for rate in args.rates:
            await breakdown(system, taps, codec, rate, args.seconds)
    finally:
        if taps is not None:
            await taps.close()
        await system.stop()
        await cleanup(args.amqp_url, namespace, taps.names if taps else [])
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default=os.environ.get("BOSON_BENCH_AMQP_URL", DEFAULT_URL))
    parser.add_argument("--rates", type=float, nargs="+", default=[20.0, 1000.0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per rate")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="BOSON_KEY=VALUE",
        help="a setting for the services and the client (repeatable), as pipeline's variants",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
