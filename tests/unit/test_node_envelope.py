"""The Node.js example client's envelope code against the Python codec.

``examples/clients/node/envelope.mjs`` was written from docs/wire-format.md
alone; here it reads what :class:`EnvelopeCodec` writes (compressed batches,
both ciphers, data.chunk version 2), refuses what §5-6 refuse with the same
reason tokens, and writes what the codec reads. One Node process answers
every case (``tests/support/node_envelope.mjs``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from typing import Any

import msgpack
import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import DataChunk, TaskSubmitted, failed_result
from tests.support.cluster import ROOT

NODE = shutil.which("node")
CLIENT = ROOT / "examples" / "clients" / "node"
KEY = bytes(range(32))
KEYS = "k1:" + base64.b64encode(KEY).decode()

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


def ask(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not (CLIENT / "node_modules").is_dir():
        pytest.fail(f"run `npm ci` in {CLIENT} first (.ci/run does)")
    assert NODE is not None
    lines = "".join(json.dumps({"keys": KEYS, **r}) + "\n" for r in requests)
    done = subprocess.run(
        [NODE, str(ROOT / "tests" / "support" / "node_envelope.mjs")],
        input=lines.encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def read(envelope: bytes) -> dict[str, Any]:
    return {"read": base64.b64encode(envelope).decode()}


def seal(kind: str, plain: bytes, flags: int) -> bytes:
    nonce = os.urandom(12)
    header = b"BSN" + bytes([1, flags, 2]) + b"k1" + bytes([len(kind)]) + kind.encode() + nonce
    return header + AESGCM(KEY).encrypt(nonce, plain, header)


def task(task_id: str) -> TaskSubmitted:
    return TaskSubmitted(task_id=task_id, handler="stats", reply_to="node-1", data=b"a,b\n1,2\n")


def test_node_reads_what_the_codec_writes() -> None:
    aes = EnvelopeCodec(Keyring.parse(KEYS))
    chacha = EnvelopeCodec(Keyring.parse(KEYS), cipher="chacha20-poly1305")
    results = [
        failed_result(task(f"t{i}"), "Boom", "x" * 3000, attempts=1).model_copy(
            update={"output": list(range(i, i + 5))}
        )
        for i in range(3)
    ]
    compressed = chacha.encode(results)
    assert compressed[4] == 0x07  # ChaCha20, batch, compressed
    chunk = DataChunk(
        upload_id="u", digest=None, index=0, total_chunks=2, total_size=9, offset=0, data=b"abc"
    )
    answers = ask([read(compressed), read(aes.encode([chunk]))])
    assert answers[0]["kind"] == "task.result"
    assert [item["task_id"] for item in answers[0]["items"]] == ["t0", "t1", "t2"]
    assert answers[0]["items"][2]["output"] == [2, 3, 4, 5, 6]
    assert answers[1] == {
        "kind": "data.chunk",
        "items": [chunk.model_dump(mode="json", exclude={"kind"}) | {"data": {"bin": "YWJj"}}],
    }


def test_node_refuses_what_the_spec_refuses_with_its_reason() -> None:
    item = task("t1").model_dump(exclude={"kind"})
    good = msgpack.packb({"v": 1, "items": [item]}, use_bin_type=True)
    stamped = msgpack.packb(
        {"v": 1, "items": [{**item, "params": {"t": msgpack.Timestamp(1, 0)}}]},
        use_bin_type=True,
        datetime=False,
    )
    frame = zstandard.ZstdCompressor().compress(good)
    tampered = bytearray(seal("task.submitted", good, 0))
    tampered[-1] ^= 1
    cases = {
        "timestamp extension": (seal("task.submitted", stamped, 0), "malformed-payload"),
        "bytes after the frame": (seal("task.submitted", frame + b"junk", 1), "malformed-payload"),
        "not a zstd frame": (seal("task.submitted", b"not zstd at all", 1), "malformed-payload"),
        "no declared size": (
            seal(
                "task.submitted",
                zstandard.ZstdCompressor(write_content_size=False).compress(good),
                1,
            ),
            "decompression-bomb",
        ),
        "schema version 0": (
            seal("task.submitted", msgpack.packb({"v": 0, "items": [item]}), 0),
            "malformed-payload",
        ),
        "schema version 3": (
            seal("task.submitted", msgpack.packb({"v": 3, "items": [item]}), 0),
            "schema",
        ),
        "tampered": (bytes(tampered), "authentication"),
        "empty key id": (b"BSN\x01\x00\x00\x01a" + bytes(28), "unknown-key"),
    }
    answers = ask([read(envelope) for envelope, _ in cases.values()])
    got = {name: answer.get("error") for name, answer in zip(cases, answers, strict=True)}
    assert got == {name: reason for name, (_, reason) in cases.items()}
    assert ask([read(seal("task.submitted", frame, 1))])[0]["kind"] == "task.submitted"


def test_the_codec_reads_what_node_writes() -> None:
    codec = EnvelopeCodec(Keyring.parse(KEYS))
    item = task("t7").model_dump(mode="json", exclude={"kind"})
    item["data"] = base64.b64encode(b"a,b\n1,2\n").decode()
    write = {"write": {"kind": "task.submitted", "items": [item, item], "bytes": ["data"]}}
    answers = ask([write, {**write, "cipher": "chacha20-poly1305"}])
    for answer, flags in zip(answers, (0x02, 0x06), strict=True):
        envelope = base64.b64decode(answer["envelope"])
        assert envelope[4] == flags
        assert (
            codec.decode(envelope)
            == [
                task("t7").model_copy(
                    update={"message_id": item["message_id"], "submitted_at": item["submitted_at"]}
                )
            ]
            * 2
        )
