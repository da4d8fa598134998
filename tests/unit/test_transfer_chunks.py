"""Chunk layout, the chunk encoding and its refusals, transfer options."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest
import zstandard
from pydantic import ValidationError

from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import CheckData, DataChunk
from boson_shared.errors import ConfigError
from boson_shared.runtime.publisher import Route
from boson_shared.transfer.chunks import (
    MIB,
    ChunkCoder,
    TransferOptions,
    chunk_count,
    fingerprint,
    sha256_hex,
    spans,
    upload_id_for,
)
from boson_shared.transfer.errors import ChunkEncodingError
from boson_shared.transfer.sender import ChunkSender

CSV = b"".join(f"{i},{i * 0.5:.6f},{i % 7}\n".encode() for i in range(20_000))


def test_spans_tile_the_blob() -> None:
    layout = spans(10 * 1024 + 3, 1024)
    assert len(layout) == chunk_count(10 * 1024 + 3, 1024) == 11
    assert [s.offset for s in layout] == [i * 1024 for i in range(11)]
    assert layout[-1].size == 3
    assert sum(s.size for s in layout) == 10 * 1024 + 3


def test_an_empty_blob_is_one_empty_chunk() -> None:
    assert chunk_count(0, 1024) == 1
    assert spans(0, 1024)[0].size == 0


def test_upload_id_is_derived_from_content_and_chunking() -> None:
    digest = sha256_hex(b"x")
    assert upload_id_for(digest, 1024) == upload_id_for(digest, 1024)
    assert upload_id_for(digest, 1024) != upload_id_for(digest, 2048)


def test_a_fingerprint_covers_the_size_the_head_and_the_tail_only() -> None:
    blob = bytearray(os.urandom(3 * MIB + 5))
    print_ = fingerprint(blob)
    assert fingerprint(bytes(blob)) == print_
    middle = bytearray(blob)
    middle[MIB + 7] ^= 1  # between the first MiB and the last: not seen
    assert fingerprint(middle) == print_
    for changed in (0, MIB - 1, len(blob) - MIB, len(blob) - 1):
        edited = bytearray(blob)
        edited[changed] ^= 1
        assert fingerprint(edited) != print_, changed
    assert fingerprint(blob[:-1]) != print_
    # Small blobs: the whole of them, and their size.
    assert fingerprint(b"") != fingerprint(b"\0")
    assert fingerprint(b"ab") != fingerprint(b"ba")


def chunk(index: int, digest: str | None = None) -> DataChunk:
    return DataChunk(
        upload_id="u",
        digest=digest,
        index=index,
        total_chunks=2,
        total_size=4,
        offset=2 * index,
        data=b"ab",
    )


def test_the_last_chunk_carries_the_digest_the_others_may_not() -> None:
    assert chunk(0).digest is None
    with pytest.raises(ValidationError, match="carries its digest"):
        chunk(1)
    assert chunk(1, sha256_hex(b"abab")).index == 1


def test_data_is_checked_by_digest_or_by_fingerprint() -> None:
    digest = sha256_hex(b"x")
    assert CheckData(digest=digest, upload_id="u", reply_to="r").fingerprint is None
    assert CheckData(fingerprint=digest, upload_id="u", reply_to="r").digest is None
    with pytest.raises(ValidationError, match="exactly one"):
        CheckData(upload_id="u", reply_to="r")
    with pytest.raises(ValidationError, match="exactly one"):
        CheckData(digest=digest, fingerprint=digest, upload_id="u", reply_to="r")


def test_compressible_bytes_travel_as_zstd() -> None:
    coder = ChunkCoder()
    encoding, payload = coder.encode(CSV)
    assert encoding == "zstd"
    assert len(payload) < len(CSV) / 2
    assert coder.decode(encoding, payload) == CSV


@pytest.mark.parametrize("hash_log", [None, 6, 10, 17])
def test_every_hash_log_makes_frames_that_declare_their_size(hash_log: int | None) -> None:
    # The receiver refuses frames without a content size: tuning the
    # compressor must not drop it.
    coder = ChunkCoder(hash_log=hash_log)
    encoding, payload = coder.encode(CSV)
    assert encoding == "zstd"
    assert zstandard.frame_content_size(payload) == len(CSV)
    assert ChunkCoder(hash_log=None).decode(encoding, payload) == CSV


def test_random_bytes_travel_as_they_are() -> None:
    raw = os.urandom(256 * 1024)
    coder = ChunkCoder()
    assert coder.encode(raw) == ("identity", raw)
    assert coder.encode(b"small") == ("identity", b"small")


def test_a_frame_that_is_not_zstd_is_refused() -> None:
    with pytest.raises(ChunkEncodingError, match="not a zstd frame"):
        ChunkCoder().decode("zstd", b"definitely not zstd")


def test_a_frame_without_its_size_is_refused() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(CSV)
    with pytest.raises(ChunkEncodingError, match="declare"):
        ChunkCoder().decode("zstd", frame)


def test_a_frame_declaring_too_much_is_refused_before_expanding() -> None:
    frame = zstandard.ZstdCompressor().compress(b"\0" * (2 * 1024 * 1024))
    with pytest.raises(ChunkEncodingError, match="over the limit"):
        ChunkCoder(max_chunk_bytes=1024 * 1024).decode("zstd", frame)


def test_a_truncated_frame_is_refused() -> None:
    frame = zstandard.ZstdCompressor().compress(CSV)
    with pytest.raises(ChunkEncodingError, match="does not decompress"):
        ChunkCoder().decode("zstd", frame[: len(frame) // 2])


def test_unknown_encoding_and_oversized_identity_are_refused() -> None:
    with pytest.raises(ChunkEncodingError, match="unknown chunk encoding"):
        ChunkCoder().decode("lz4", b"x")
    with pytest.raises(ChunkEncodingError, match="exceeds the limit"):
        ChunkCoder(max_chunk_bytes=1024).decode("identity", b"x" * 2048)


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_size": 10},
        {"inline_max_bytes": -1},
        {"zstd_level": 40},
        {"zstd_hash_log": 5},
        {"zstd_hash_log": 31},
        {"window": 0},
        {"check_timeout_s": 0},
        {"cache_bytes": -1},
    ],
)
def test_bad_options_are_config_errors(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        TransferOptions(**bad)


@pytest.mark.parametrize("size", [0, 5, MIB, MIB + 3, 2 * MIB + 9])
def test_the_fingerprint_is_the_one_the_wire_format_defines(size: int) -> None:
    blob = os.urandom(size)
    tail = max(MIB, size - MIB)
    by_hand = hashlib.sha256(size.to_bytes(8, "big") + blob[:MIB] + blob[tail:]).hexdigest()
    assert fingerprint(blob) == by_hand


class _Published:
    """Just enough of a transport to keep what is published."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def publish(self, exchange: str, routing_key: str, body: bytes, **_: object) -> None:
        self.bodies.append(body)


class _SpyCodec(EnvelopeCodec):
    def __init__(self) -> None:
        super().__init__(Keyring.ephemeral())
        self.payload_types: list[type] = []

    def encode_raw(self, kind: str, items: Sequence[Mapping[str, Any]]) -> bytes:
        self.payload_types.extend(type(item["data"]) for item in items)
        return super().encode_raw(kind, items)


async def test_chunks_of_a_view_are_sent_without_copying_them_first() -> None:
    blob = os.urandom(3 * 4096 + 10) + CSV[: 3 * 4096]
    view = memoryview(blob)
    transport, codec = _Published(), _SpyCodec()
    sender = ChunkSender(cast(Transport, transport), codec, ChunkCoder(), window=2)
    layout = spans(len(blob), 4096)
    await sender.send(
        Route("x", "y"),
        layout,
        read=lambda span: view[span.offset : span.offset + span.size],
        total_size=len(blob),
        upload_id="u",
        digest=sha256_hex(blob),
        total_chunks=len(layout),
        reply_to=None,
        mandatory=False,
    )
    # Random bytes travel as they are: the envelope is sealed from the view.
    assert codec.payload_types.count(memoryview) >= 3
    chunks = sorted(
        (m for body in transport.bodies for m in codec.decode(body)),
        key=lambda m: m.index if isinstance(m, DataChunk) else -1,
    )
    coder = ChunkCoder()
    rebuilt = b""
    for chunk in chunks:
        assert isinstance(chunk, DataChunk)
        assert chunk.digest == sha256_hex(blob)
        rebuilt += coder.decode(chunk.encoding, chunk.data)
    assert rebuilt == blob
