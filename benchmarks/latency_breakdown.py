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
broker, the next service receiving, decoding and handling. A
:class:`~boson_shared.runtime.tap.Tap` (a classic queue bound beside the real
ones) collects the placed and assigned envelopes; they are decoded after
the run, so the tap costs the client only the deliveries. The last hop
ends when the client's consumer sees the result. All processes share one
clock (one machine).
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

from benchmarks.pipeline import DEFAULT_URL, cleanup, open_loop, percentile
from benchmarks.pipeline_systems import BosonSystem
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.messages import TaskAssigned, TaskPlaced, TaskResult
from boson_shared.contract.topology import RK_PLACED, rk_node
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.tap import Tap

STAMPS = ("submitted", "placed", "assigned", "finished", "at client")
HOPS = (
    "client → scheduler",
    "scheduler → balancer",
    "balancer → executor (incl. running)",
    "executor → client",
)


async def breakdown(
    system: BosonSystem, tap: Tap, codec: EnvelopeCodec, rate: float, seconds: float
) -> None:
    client = system.client
    assert client is not None
    seen_by_client: dict[str, float] = {}
    stamps: dict[str, dict[str, float]] = {}
    first = len(tap.envelopes)  # what this rate's run adds
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
        await asyncio.sleep(0.5)  # the tap's last copies
    finally:
        client._on_result = original  # type: ignore[method-assign]
    for body in tap.envelopes[first:]:
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
    watcher = AmqpTransport(args.amqp_url, connection_name="boson-bench-breakdown")
    tap: Tap | None = None
    try:
        await system.start()
        settings = system.cluster.settings()
        codec = EnvelopeCodec.from_settings(settings)
        work = settings.names().work_exchange
        tap = Tap(
            watcher, codec, f"{namespace}.breakdown", [(work, RK_PLACED), (work, rk_node("*"))]
        )
        await tap.start()
        await open_loop(system, 500, 250, timeout=30)  # warm up
        print(
            f"latency breakdown: namespace {namespace}, {os.cpu_count()} cores, "
            f"settings {settings_env or 'default'}"
        )
        for rate in args.rates:
            await breakdown(system, tap, codec, rate, args.seconds)
    finally:
        if tap is not None:
            await tap.close()
        await watcher.close()
        await system.stop()
        await cleanup(args.amqp_url, namespace, [])
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
