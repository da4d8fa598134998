"""Codec benchmark: the Boson envelope against the naive msgpack → zstd → AES-GCM chain.

Run ``python benchmarks/codec.py`` from anywhere. Both sides start from the
same Python dict and end with an equal dict (``encode_raw``/``decode_raw`` on
our side), so pydantic is out of the ratios; its cost is printed on its own
line. Reported times are the best of several repeats, encode + decode per
message.

The naive chain is what one writes first: ``msgpack.packb`` → a reused
``ZstdCompressor(level=3)`` → ``AESGCM.encrypt`` under ``os.urandom(12)``,
and back with a reused decompressor.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import DataChunk, ResourceRequest, TaskSubmitted

MIB = 1024 * 1024


class NaiveChain:
    """The baseline: every stage always on, a fresh random nonce per message."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._compressor = zstandard.ZstdCompressor(level=3)
        self._decompressor = zstandard.ZstdDecompressor()

    def encode(self, item: dict[str, Any]) -> bytes:
        nonce = os.urandom(12)
        packed = self._compressor.compress(msgpack.packb(item))
        return nonce + self._aead.encrypt(nonce, packed, None)

    def decode(self, data: bytes) -> dict[str, Any]:
        plain = self._aead.decrypt(data[:12], data[12:], None)
        result: dict[str, Any] = msgpack.unpackb(self._decompressor.decompress(plain))
        return result


def task_item() -> dict[str, Any]:
    """A realistic ~1 KiB TaskSubmitted, dumped the way ``encode`` dumps it."""
    task = TaskSubmitted(
        task_id="task-7f3c2a91d4e64b0f9a1c2d3e4f5a6b7c",
        handler="analysis.column_stats",
        params={
            "columns": ["cpu_util", "mem_util", "latency_ms", "queue_depth", "error_rate"],
            "percentiles": [0.5, 0.9, 0.95, 0.99, 0.999],
            "group_by": "node_id",
            "window": {"start": "2025-05-01T00:00:00Z", "end": "2025-05-01T06:00:00Z"},
            "filters": [
                {"column": "region", "op": "in", "value": ["eu-west-1", "eu-central-1"]},
                {"column": "status", "op": "!=", "value": "maintenance"},
            ],
            "output": {"format": "table", "precision": 4, "include_histogram": True},
            "tags": {"team": "capacity-planning", "ticket": "CAP-1182", "priority": "normal"},
            "notes": "weekly regression of node utilisation against queue depth, "
            "compared with the previous four weeks and flagged where p99 latency "
            "exceeds the service objective by more than ten percent",
        },
        complexity=120.0,
        data_size=48_000.0,
        requests=ResourceRequest(cpu=4.0, memory=16.0),
        timeout_s=900.0,
        reply_to="client-3b9e6f2a.replies",
    )
    return task.model_dump(mode="python", exclude={"kind"})


def chunk_item(data: bytes) -> dict[str, Any]:
    chunk = DataChunk(
        upload_id="upload-5d2f8e1a9b3c4d7e",
        digest="9f2c" * 16,
        index=0,
        total_chunks=1,
        total_size=len(data),
        offset=0,
        data=data,
    )
    return chunk.model_dump(mode="python", exclude={"kind"})


def random_floats() -> bytes:
    return np.random.default_rng(7).random(MIB // 8).tobytes()


def csv_text() -> bytes:
    rng = random.Random(7)
    rows = ["timestamp,node_id,region,cpu_util,mem_util,latency_ms,queue_depth,status"]
    size = len(rows[0]) + 1
    second = 1_746_057_600
    while size < MIB:
        row = (
            f"{second},node-{rng.randrange(64):03d},{rng.choice(('eu-west-1', 'us-east-2'))},"
            f"{rng.random():.4f},{rng.random():.4f},{rng.lognormvariate(3, 0.6):.2f},"
            f"{rng.randrange(200)},{rng.choice(('ok', 'ok', 'ok', 'degraded'))}"
        )
        rows.append(row)
        size += len(row) + 1
        second += 1
    return ("\n".join(rows) + "\n").encode()[:MIB]


def best_us(
    *round_trips: Callable[[], object], budget_s: float = 0.2, repeats: int = 9
) -> list[float]:
    """Best-of-``repeats`` microseconds per call for each function.

    The functions are timed in alternation, repeat by repeat, so that a noisy
    neighbour on a shared machine slows both sides alike.
    """
    numbers = []
    for round_trip in round_trips:
        round_trip()
        start = time.perf_counter()
        round_trip()
        numbers.append(max(3, int(budget_s / max(time.perf_counter() - start, 1e-7))))
    best = [float("inf")] * len(round_trips)
    for _ in range(repeats):
        for index, (round_trip, number) in enumerate(zip(round_trips, numbers, strict=True)):
            start = time.perf_counter()
            for _ in range(number):
                round_trip()
            best[index] = min(best[index], (time.perf_counter() - start) / number)
    return [seconds * 1e6 for seconds in best]


def main() -> int:
    keyring = Keyring.ephemeral()
    ours = EnvelopeCodec(keyring)
    naive = NaiveChain(keyring.key(keyring.active_key_id))
    cases: list[tuple[str, str, dict[str, Any], float]] = [
        ("task message ~1 KiB", "task.submitted", task_item(), 1.8),
        ("random float64 1 MiB", "data.chunk", chunk_item(random_floats()), 5.0),
        ("CSV text 1 MiB", "data.chunk", chunk_item(csv_text()), 0.95),
    ]
    print(
        f"{'case':<22}{'side':<7}{'µs/msg':>10}{'msgs/s':>11}{'MB/s':>9}"
        f"{'wire B':>10}{'wire/raw':>9}"
    )
    ok = True
    for name, kind, item, target in cases:
        raw_size = len(msgpack.packb(item))

        def ours_rt(kind: str = kind, item: dict[str, Any] = item) -> object:
            return ours.decode_raw(ours.encode_raw(kind, [item]))

        def naive_rt(item: dict[str, Any] = item) -> object:
            return naive.decode(naive.encode(item))

        assert ours.decode_raw(ours.encode_raw(kind, [item])) == (kind, [item])
        assert naive.decode(naive.encode(item)) == item
        sizes = {"ours": len(ours.encode_raw(kind, [item])), "naive": len(naive.encode(item))}
        ours_us, naive_us = best_us(ours_rt, naive_rt)
        times = {"ours": ours_us, "naive": naive_us}
        for side in ("ours", "naive"):
            us = times[side]
            print(
                f"{name if side == 'ours' else '':<22}{side:<7}{us:>10.2f}{1e6 / us:>11,.0f}"
                f"{raw_size / us:>9.1f}{sizes[side]:>10,}{sizes[side] / raw_size:>9.3f}"
            )
        speedup = times["naive"] / times["ours"]
        size_ratio = sizes["ours"] / sizes["naive"]
        met = speedup >= target
        ok = ok and met
        print(
            f"{'':<22}ratio  rate ours/naive {speedup:.2f}x (target ≥{target}x: "
            f"{'met' if met else 'MISSED'}), bytes ours/naive {size_ratio:.3f}"
        )

    item = task_item()
    envelope = ours.encode_raw("task.submitted", [item])
    raw_us, full_us, validate_us = best_us(
        lambda: ours.decode_raw(envelope),
        lambda: ours.decode(envelope),
        lambda: TaskSubmitted.model_validate(item),
    )
    print(
        f"pydantic (task ~1 KiB, not in ratios): model_validate {validate_us:.2f} µs; "
        f"decode {full_us:.2f} µs vs decode_raw {raw_us:.2f} µs"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["NaiveChain", "main"]
