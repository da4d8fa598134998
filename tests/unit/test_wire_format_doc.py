"""docs/wire-format.md is enough to interoperate.

Everything here is written from that page alone, with msgpack, zstandard and
cryptography: the constants are literals copied from the doc. The only thing
taken from ``shared`` is the codec under test, built in :func:`boson_codec`
from the doc's ``BOSON_KEYS`` line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"

# Literals from docs/wire-format.md.
MAGIC = b"BSN"
VERSION = 1
FLAG_COMPRESSED = 0x01
FLAG_BATCH = 0x02
CIPHER_AES, CIPHER_CHACHA = 0, 1
NONCE_LEN, TAG_LEN = 12, 16
DOC_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
DOC_KEYS = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
DOC_ENVELOPE = bytes.fromhex(
    "42534e0100026b3105616c657274a0a1a2a3a4a5a6a700000005b64fcdb8546701aa1a18a8c130"
    "0345a61bcb1921e4f232f4d21da17539737cf45d333412ea6d0a27db9f8d7679195701b425af0b"
    "ddc269c2ba03a990b3d93dc6b2dc5444945344110a9423d7b7b4a44df21cbde819aa1587448184"
    "f4e8813b0ff1b6575ccedc5a185c69b8bb42854626995c935d98bb4be2fe271b73eeb6fadee507"
    "b37013ae980a913320d9f19a24890400ca3e3c33b548e994da13bd91"
)
DOC_ALERT = {
    "message_id": "m1",
    "reason": "node-down",
    "severity": "critical",
    "detail": "node n3 missed 3 heartbeats",
    "node_id": "n3",
    "task_id": None,
    "value": None,
    "raised_at": 1700000000.0,
}


def boson_codec() -> Any:
    """The one thing taken from ``shared``: the codec, keyed from the doc."""
    from boson_shared.contract.codec import EnvelopeCodec
    from boson_shared.contract.keyring import Keyring

    return EnvelopeCodec(Keyring.parse(DOC_KEYS))


def build(
    kind: str,
    items: list[dict[str, Any]],
    *,
    key_id: str = "k1",
    key: bytes = DOC_KEY,
    cipher: int = CIPHER_AES,
    compress: bool = False,
) -> bytes:
    """An envelope built by hand, following the doc step by step."""
    plain = msgpack.packb({"v": 1, "items": items}, use_bin_type=True)
    flags = cipher << 2
    if len(items) > 1:
        flags |= FLAG_BATCH
    if compress:
        plain = zstandard.ZstdCompressor(level=3).compress(plain)
        flags |= FLAG_COMPRESSED
    nonce = os.urandom(NONCE_LEN)
    header = (
        MAGIC
        + bytes([VERSION, flags, len(key_id)])
        + key_id.encode("ascii")
        + bytes([len(kind)])
        + kind.encode("ascii")
        + nonce
    )
    aead = ChaCha20Poly1305(key) if cipher == CIPHER_CHACHA else AESGCM(key)
    return header + aead.encrypt(nonce, plain, header)


def take_apart(envelope: bytes, key: bytes = DOC_KEY) -> dict[str, Any]:
    """An envelope read by hand, following the doc step by step."""
    assert envelope[:3] == MAGIC
    assert envelope[3] == VERSION
    flags = envelope[4]
    assert flags & 0xF0 == 0
    n = envelope[5]
    key_id = envelope[6 : 6 + n].decode("ascii")
    m = envelope[6 + n]
    kind = envelope[7 + n : 7 + n + m].decode("ascii")
    end = 7 + n + m + NONCE_LEN
    header, nonce = envelope[:end], envelope[end - NONCE_LEN : end]
    cipher = (flags >> 2) & 3
    aead = ChaCha20Poly1305(key) if cipher == CIPHER_CHACHA else AESGCM(key)
    plain = aead.decrypt(nonce, envelope[end:], header)
    assert len(envelope) == end + len(plain) + TAG_LEN
    if flags & FLAG_COMPRESSED:
        declared = zstandard.frame_content_size(plain)
        assert 0 <= declared <= 16 * 1024 * 1024
        plain = zstandard.ZstdDecompressor().decompress(plain, max_output_size=declared)
    payload = msgpack.unpackb(plain, raw=False)
    assert set(payload) == {"v", "items"}
    assert (len(payload["items"]) > 1) == bool(flags & FLAG_BATCH)
    return {
        "flags": flags,
        "key_id": key_id,
        "kind": kind,
        "nonce": nonce,
        "cipher": cipher,
        "v": payload["v"],
        "items": payload["items"],
    }


def task_item(task_id: str = "t1", **extra: Any) -> dict[str, Any]:
    return {
        "message_id": f"m-{task_id}",
        "task_id": task_id,
        "handler": "analysis.stats",
        "params": {"columns": ["cpu", "mem"]},
        "complexity": 100.0,
        "data_size": 1000.0,
        "reply_to": "client-1",
        "submitted_at": 1700000000.0,
        **extra,
    }


def heartbeat_item(node_id: str) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "seq": 7,
        "started_at": 1.0,
        "capacity": {"cpu": 500.0, "memory": 500.0, "gpu": 0.0},
        "allocated": {"cpu": 350.0, "memory": 0.0, "gpu": 0.0},
        "slots": 4,
        "running": 2,
        "free_slots": 2,
        "measured_cpu": 0.7,
        "measured_memory": 0.4,
    }


# -- the page itself -------------------------------------------------------------


def test_doc_shows_the_example_bytes_used_here() -> None:
    text = re.sub(r"\s+", "", DOC.read_text(encoding="utf-8"))
    assert DOC_ENVELOPE.hex() in text
    assert DOC_KEY.hex() in text
    assert DOC_KEYS.partition(":")[2] in text


def test_worked_example_reads_by_hand() -> None:
    parts = take_apart(DOC_ENVELOPE)
    assert parts["flags"] == 0x00
    assert parts["key_id"] == "k1"
    assert parts["kind"] == "alert"
    assert parts["nonce"] == bytes.fromhex("a0a1a2a3a4a5a6a7") + (5).to_bytes(4, "big")
    assert parts["v"] == 1
    assert parts["items"] == [DOC_ALERT]


def test_worked_example_decodes_with_the_codec() -> None:
    (alert,) = boson_codec().decode(DOC_ENVELOPE)
    assert alert.kind == "alert"
    assert alert.model_dump(exclude={"kind"}) == DOC_ALERT


def test_doc_python_snippet_interoperates() -> None:
    source = DOC.read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", source, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)
    keys = {"k1": DOC_KEY}
    assert namespace["read"](DOC_ENVELOPE, keys) == ("alert", [DOC_ALERT])
    written = namespace["write"]("task.submitted", [task_item("t9")], "k1", DOC_KEY)
    assert boson_codec().decode(written)[0].task_id == "t9"
    codec = boson_codec()
    batch = codec.encode_raw(
        "task.submitted", [task_item(f"t{i}", data=b"x" * 9000) for i in range(3)]
    )
    kind, items = namespace["read"](batch, keys)
    assert kind == "task.submitted"
    assert [item["task_id"] for item in items] == ["t0", "t1", "t2"]


# -- hand-built envelopes, decoded by the codec ----------------------------------


def test_hand_built_single_message_decodes() -> None:
    (task,) = boson_codec().decode(build("task.submitted", [task_item()]))
    assert task.kind == "task.submitted"
    assert task.task_id == "t1"
    assert task.params == {"columns": ["cpu", "mem"]}


def test_hand_built_batch_decodes() -> None:
    items = [heartbeat_item(f"n{i}") for i in range(4)]
    messages = boson_codec().decode(build("node.heartbeat", items))
    assert [m.node_id for m in messages] == ["n0", "n1", "n2", "n3"]


def test_hand_built_compressed_chacha_batch_decodes() -> None:
    items = [task_item(f"t{i}", data=b"col_a,col_b\n1,2\n" * 500) for i in range(3)]
    envelope = build("task.submitted", items, cipher=CIPHER_CHACHA, compress=True)
    assert envelope[4] == (1 << 2) | FLAG_BATCH | FLAG_COMPRESSED
    messages = boson_codec().decode(envelope)
    assert [m.data for m in messages] == [b"col_a,col_b\n1,2\n" * 500] * 3


def test_hand_built_envelope_with_an_altered_header_is_refused() -> None:
    envelope = bytearray(build("task.submitted", [task_item()]))
    envelope[4] |= FLAG_COMPRESSED  # the flags are in the AAD
    with pytest.raises(Exception, match="authentication failed") as caught:
        boson_codec().decode(bytes(envelope))
    assert caught.type.__name__ == "AuthenticationError"


# -- codec envelopes, read by hand -----------------------------------------------


def test_codec_single_message_reads_by_hand() -> None:
    codec = boson_codec()
    (message,) = codec.decode(build("task.submitted", [task_item("t5")]))
    parts = take_apart(codec.encode([message]))
    assert parts["kind"] == "task.submitted"
    assert parts["key_id"] == "k1"
    assert parts["flags"] == 0x00
    assert parts["v"] == 4  # task.submitted is at version 4 (the doc says so)
    (item,) = parts["items"]
    assert "kind" not in item
    assert item["task_id"] == "t5"
    assert item["params"] == {"columns": ["cpu", "mem"]}


def test_codec_batches_and_compression_read_by_hand() -> None:
    codec = boson_codec()
    items = [task_item(f"t{i}", data=b"0123,4567,89\n" * 1000) for i in range(2)]
    parts = take_apart(codec.encode_raw("task.submitted", items))
    assert parts["flags"] == FLAG_BATCH | FLAG_COMPRESSED
    assert parts["items"] == items


def test_codec_nonces_follow_the_documented_rule() -> None:
    codec = boson_codec()
    nonces = [take_apart(codec.encode_raw("alert", [DOC_ALERT]))["nonce"] for _ in range(3)]
    assert len({nonce[:8] for nonce in nonces}) == 1
    counters = [int.from_bytes(nonce[8:], "big") for nonce in nonces]
    assert counters == [counters[0], counters[0] + 1, counters[0] + 2]


# -- the §8 sample follows §5 ------------------------------------------------------


def doc_snippet() -> dict[str, Any]:
    source = DOC.read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", source, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)
    return namespace


def seal_plain(kind: str, plain: bytes, flags: int) -> bytes:
    nonce = os.urandom(NONCE_LEN)
    header = MAGIC + bytes([VERSION, flags, 2]) + b"k1" + bytes([len(kind)]) + kind.encode()
    header += nonce
    return header + AESGCM(DOC_KEY).encrypt(nonce, plain, header)


def test_doc_reader_refuses_bytes_after_the_zstd_frame() -> None:
    read = doc_snippet()["read"]
    plain = msgpack.packb({"v": 1, "items": [task_item()]}, use_bin_type=True)
    frame = zstandard.ZstdCompressor().compress(plain)
    assert read(seal_plain("task.submitted", frame, FLAG_COMPRESSED), {"k1": DOC_KEY})
    with pytest.raises(zstandard.ZstdError, match="unused data"):
        read(seal_plain("task.submitted", frame + b"junk", FLAG_COMPRESSED), {"k1": DOC_KEY})


@pytest.mark.parametrize("stamp", [msgpack.Timestamp(1, 0), msgpack.Timestamp(1, 5)])
def test_doc_reader_refuses_timestamp_extensions(stamp: msgpack.Timestamp) -> None:
    read = doc_snippet()["read"]
    item = task_item(params={"t": stamp})
    plain = msgpack.packb({"v": 1, "items": [item]}, use_bin_type=True, datetime=False)
    with pytest.raises(ValueError, match="max_ext_len"):
        read(seal_plain("task.submitted", plain, 0), {"k1": DOC_KEY})


def test_doc_reader_and_writer_speak_data_chunk_version_2() -> None:
    snippet = doc_snippet()
    codec = boson_codec()
    from boson_shared.contract.messages import DataChunk

    chunk = DataChunk(
        upload_id="u1", digest=None, index=0, total_chunks=2, total_size=8, offset=0, data=b"abcd"
    )
    kind, (item,) = snippet["read"](codec.encode([chunk]), {"k1": DOC_KEY})
    assert kind == "data.chunk"
    assert item["digest"] is None
    written = snippet["write"]("data.chunk", [item], "k1", DOC_KEY)
    assert take_apart(written)["v"] == 2
    assert codec.decode(written) == [chunk]


def test_doc_states_the_decided_rules_and_links_the_contract() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "[`asyncapi.yaml`](asyncapi.yaml)" in text
    assert "so it too is `unknown-key`, not `truncated`" in text
    assert "any byte after the end of the frame" in text
    assert "`0`, a negative number or a non-integer is a malformed payload" in text
    assert "the `=` padding is optional" in text
    assert "`aes-256-gcm` (the default" in text
    assert "`chacha20-poly1305` (value 1)" in text
    from boson_shared.contract.envelope import CIPHERS

    assert set(CIPHERS) == {"aes-256-gcm", "chacha20-poly1305"}
