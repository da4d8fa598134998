"""Transfer benchmark: user MB/s through the data plane next to bare aio-pika.

Run ``python benchmarks/transfer.py`` with RabbitMQ on ``--broker`` (default
``BOSON_BENCH_AMQP_URL`` or ``amqp://guest:guest@127.0.0.1:5672/``). It starts
the transfer service as its own process (``python -m boson_services.transfer``, a
temporary blob directory), then uploads 50 MiB of freshly generated CSV and of
random float64 through it and reports, per kind, the best of ``--repeats``:

* user MB/s — the blob's size over the time from ``upload()`` until its
  ``DataStored`` arrives (hashing, the store check, every chunk confirmed,
  reassembly, the digest check and fsync included);
* the compression ratio the chunk encoding got (raw bytes / bytes sent);
* bare aio-pika on the same broker: the same bytes in 1 MiB persistent
  messages to a quorum queue (what the chunks queue is), publisher confirms
  pipelined, until a consumer on another connection holds them all — and the
  ratio between the two.

Every repeat uses new content (a new digest), so nothing is deduplicated.
``--profile`` writes a pyinstrument profile of the uploading side. ``--cpu``
adds where the CPU went, per upload (median ms): this process (the uploader,
or bare's publisher and consumer), the transfer service, the broker — read
from ``/proc/<pid>/task/*/schedstat``, so it holds up better than MB/s on a
machine busy with other work. Bare is measured over the span its MB/s is
(first publish until the consumer holds every message), not its connections
or its quorum queue's declare and delete. The broker's figure counts all of
the broker's work meanwhile, other clients' included.
MB is 10^6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aio_pika
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring, generate_key_spec
from boson_shared.contract.messages import Message
from boson_shared.contract.topology import Names
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import BatchingPublisher
from boson_shared.transfer.chunks import MIB, TransferOptions
from boson_shared.transfer.replies import DATA_REPLY_TYPES, DataReplies
from boson_shared.transfer.uploader import Uploader

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000


def make_csv(size: int, seed: int) -> bytes:
    """``size`` bytes of numeric CSV (5 columns, 6 decimals), as data analysis sends."""
    rng = np.random.default_rng(seed)
    rows = size // 50 + 1
    table = rng.normal(loc=100.0, scale=15.0, size=(rows, 5))
    buffer = io.BytesIO()
    np.savetxt(buffer, table, delimiter=",", fmt="%.6f", header="a,b,c,d,e", comments="")
    return buffer.getvalue()[:size]


def make_floats(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).random(size // 8).tobytes()


def cpu_ms(pid: int) -> float:
    """CPU time of process ``pid``'s live threads so far, in ms (Linux ``/proc``, ns-exact)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e6


def broker_pid() -> int | None:
    """The local RabbitMQ's Erlang VM, if it runs on this machine."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "beam.smp":
                    return int(entry.name)
    return None


class CpuMeter:
    """CPU ms spent by this process, the service and the broker between two points."""

    def __init__(self, service_pid: int) -> None:
        self.pids = {"this": os.getpid(), "service": service_pid}
        broker = broker_pid()
        if broker is not None:
            self.pids["broker"] = broker
        self.samples: dict[str, list[dict[str, float]]] = {}
        self._start: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_ms(pid) for name, pid in self.pids.items()}

    def stop(self, label: str) -> None:
        spent = {name: cpu_ms(pid) - self._start[name] for name, pid in self.pids.items()}
        self.samples.setdefault(label, []).append(spent)

    def window(self, label: str) -> Callable[[], contextlib.AbstractAsyncContextManager[object]]:
        """An async context manager factory: what runs inside it is measured as ``label``."""

        @contextlib.asynccontextmanager
        async def measured() -> AsyncIterator[object]:
            self.start()
            yield None
            self.stop(label)

        return measured

    def report(self) -> list[str]:
        lines = [f"{'cpu ms/upload':<18} " + " ".join(f"{n:>8}" for n in self.pids)]
        for label, samples in self.samples.items():
            medians = [sorted(s[n] for s in samples)[len(samples) // 2] for n in self.pids]
            lines.append(f"{label:<18} " + " ".join(f"{m:>8.0f}" for m in medians))
        return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TransferProcess:
    """The transfer service as a child process, like a deployment runs it."""

    def __init__(
        self, url: str, namespace: str, keys: str, blob_dir: Path, profile: str | None = None
    ) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "BOSON_BROKER_URL": url,
            "BOSON_NAMESPACE": namespace,
            "BOSON_KEYS": keys,
            "BOSON_BLOB_DIR": str(blob_dir),
            "BOSON_HEALTH_PORT": str(self.port),
            "BOSON_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "boson_services.transfer"]
        if profile is not None:
            command[1:1] = ["-m", "cProfile", "-o", profile]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT)

    def health(self) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                body: dict[str, object] = json.loads(r.read())
                return body
        except (OSError, ValueError):
            return None

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = await asyncio.to_thread(self.health)
            if body is not None and body.get("status") == "ok":
                return
            if self.process.poll() is not None:
                raise RuntimeError("the transfer service exited at start")
            await asyncio.sleep(0.1)
        raise TimeoutError("the transfer service did not become healthy")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


class UploadSide:
    """What a client holds to upload: a connection, a reply queue, an uploader."""

    def __init__(self, url: str, names: Names, codec: EnvelopeCodec) -> None:
        self.names = names
        self.codec = codec
        self.transport = AmqpTransport(url, connection_name="boson-bench-upload")
        self.publisher = BatchingPublisher(self.transport, codec)
        self.replies = DataReplies()
        self.reply_to = f"bench-{uuid.uuid4().hex[:8]}"
        self.uploader = Uploader(
            self.transport,
            codec,
            self.publisher,
            names,
            self.replies,
            self.reply_to,
            TransferOptions(window=int(os.environ.get("BENCH_WINDOW", "8"))),
        )
        self.loop: ConsumeLoop[Message] | None = None

    async def start(self) -> None:
        await self.transport.connect()
        await self.transport.declare(self.names.client(self.reply_to, 600_000))
        self.loop = ConsumeLoop(
            ConsumerSpec(
                queue=self.names.client_queue(self.reply_to),
                accepts=DATA_REPLY_TYPES,
                handler=self.replies.handle,
                prefetch=100,
            ),
            transport=self.transport,
            codec=self.codec,
            publisher=self.publisher,
            names=self.names,
            seen=SeenIds(10_000),
        )
        await self.loop.start()

    async def close(self) -> None:
        if self.loop is not None:
            await self.loop.stop()
        await self.publisher.close()
        await self.transport.close()


async def bare_aio_pika(
    url: str,
    queue_name: str,
    data: bytes,
    chunk: int = MIB,
    *,
    window: Callable[[], contextlib.AbstractAsyncContextManager[object]] = contextlib.nullcontext,
) -> float:
    """Seconds to move ``data`` in ``chunk``-sized messages through a queue, consumed.

    ``window`` brackets just that span (a CPU meter, say): the connections, the
    queue's declare and delete stay outside it, as the upload's own set-up does.
    """
    publisher = await aio_pika.connect(url)
    consumer = await aio_pika.connect(url)
    try:
        channel = await publisher.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        got = asyncio.Event()
        received = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == len(pieces):
                got.set()

        consume_channel = await consumer.channel()
        await consume_channel.set_qos(prefetch_count=32)
        consume_queue = await consume_channel.get_queue(queue_name)
        consumer_tag = await consume_queue.consume(on_message)
        async with window():
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(piece, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue_name,
                    )
                    for piece in pieces
                )
            )
            await asyncio.wait_for(got.wait(), 120)
            elapsed = time.perf_counter() - started
        # Cancelled first: deleting the queue under a consumer makes aio-pika log it.
        await consume_queue.cancel(consumer_tag)
        await queue.delete(if_unused=False, if_empty=False)
        return elapsed
    finally:
        await publisher.close()
        await consumer.close()


async def run(args: argparse.Namespace) -> None:
    url: str = args.broker
    size = args.size_mib * MIB
    namespace = f"bench-transfer-{uuid.uuid4().hex[:6]}"
    names = Names(namespace=namespace)
    keys = generate_key_spec("bench")
    codec = EnvelopeCodec(Keyring.parse(keys))
    blob_dir = Path(tempfile.mkdtemp(prefix="boson-bench-blobs-"))
    service = TransferProcess(url, namespace, keys, blob_dir, args.profile_service)
    side = UploadSide(url, names, codec)
    profiler = None
    try:
        await service.ready()
        await side.start()
        print(f"transfer benchmark: {args.size_mib} MiB per upload, best of {args.repeats}")
        print(f"broker {url.split('@')[-1]}, {os.cpu_count()} CPUs, namespace {namespace}")
        base_csv = make_csv(size, seed=int(time.time()))

        def fresh_csv(k: int) -> bytes:
            # A new header line per repeat: new content, the same compressibility.
            return f"run{k},b,c,d,e".encode() + base_csv[base_csv.index(b"\n") :]

        def fresh_floats(k: int) -> bytes:
            return make_floats(size, seed=int(time.time() * 1000) + k)

        datasets: dict[str, Callable[[int], bytes]] = {"csv": fresh_csv, "random f64": fresh_floats}
        # Warm up both paths (connections, channels, thread pool) off the record.
        await side.uploader.upload(make_floats(4 * MIB, seed=1))
        await bare_aio_pika(url, f"{namespace}.bare", make_floats(4 * MIB, seed=2))
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled")
        meter = CpuMeter(service.process.pid) if args.cpu else None
        rows = []
        for kind, make in datasets.items():
            best = float("inf")
            ratio = 0.0
            bare_best = float("inf")
            for repeat in range(args.repeats):
                data = make(repeat)[:size]
                stats = side.uploader.sender.stats
                raw0, sent0 = stats.raw_bytes, stats.sent_bytes
                if profiler is not None:
                    profiler.start()
                if meter is not None:
                    meter.start()
                report = await side.uploader.upload_report(data)
                if meter is not None:
                    meter.stop(kind)
                if profiler is not None:
                    profiler.stop()
                assert report.chunks_sent > 0, "fresh content must not be deduplicated"
                best = min(best, report.seconds)
                ratio = (stats.raw_bytes - raw0) / max(1, stats.sent_bytes - sent0)
                window = contextlib.nullcontext if meter is None else meter.window(f"{kind} (bare)")
                bare = await bare_aio_pika(url, f"{namespace}.bare", data, window=window)
                bare_best = min(bare_best, bare)
            rows.append((kind, len(data) / best / MB, ratio, len(data) / bare_best / MB))
        print()
        print(
            f"{'data':<12} {'transfer MB/s':>14} {'compression':>12} {'bare MB/s':>10} {'ratio':>7}"
        )
        for kind, rate, ratio, bare_rate in rows:
            print(
                f"{kind:<12} {rate:>14.0f} {ratio:>11.2f}x {bare_rate:>10.0f} "
                f"{rate / bare_rate:>6.2f}x"
            )
        print()
        print("targets: csv >= 300 MB/s; random >= 0.7x bare")
        if meter is not None:
            print()
            print("\n".join(meter.report()))
        if profiler is not None:
            path = Path(args.profile)
            text = profiler.output_text(unicode=True, color=False)
            await asyncio.to_thread(path.write_text, text)
            print(f"profile of the uploading side written to {path}")
    finally:
        await side.close()
        service.stop()
        await cleanup(url, names, side.reply_to)
        with contextlib.suppress(OSError):
            import shutil

            shutil.rmtree(blob_dir)


async def cleanup(url: str, names: Names, reply_to: str) -> None:
    transport = AmqpTransport(url, connection_name="boson-bench-cleanup")
    await transport.connect()
    try:
        topology = names.transfer() + names.client(reply_to, 600_000)
        for queue in topology.queues:
            await transport.delete_queue(queue.name)
        await transport.delete_queue(f"{names.namespace}.bare")
        for exchange in topology.exchanges:
            await transport.delete_exchange(exchange.name)
    finally:
        await transport.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--broker",
        default=os.environ.get("BOSON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--size-mib", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="report CPU ms per upload, per process")
    parser.add_argument("--profile", metavar="PATH", help="write a pyinstrument profile here")
    parser.add_argument(
        "--profile-service", metavar="PATH", help="run the service under cProfile, stats here"
    )
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
