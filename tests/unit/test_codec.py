"""The envelope codec: round trips, compression, nonces, rotation, and every error.

Each decode error is provoked with real bad bytes: envelopes sealed by hand
with the right key where the point is what is *inside* them.
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

import msgpack
import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from pydantic import SecretStr

from boson_shared.contract.codec import (
    FLAG_BATCH,
    FLAG_COMPRESSED,
    MAGIC,
    Codec,
    EnvelopeCodec,
)
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    Alert,
    CheckData,
    DataChunk,
    Message,
    NodeHeartbeat,
    ResourceVector,
    TaskSubmitted,
)
from boson_shared.errors import (
    AuthenticationError,
    BadMagicError,
    ConfigError,
    DecodeError,
    DecompressionBombError,
    EncodeError,
    MalformedPayloadError,
    OversizeError,
    SchemaError,
    TruncatedError,
    UnknownKeyError,
    UnknownKindError,
    UnsupportedVersionError,
)
from boson_shared.settings import BosonSettings

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
MIB = 1024 * 1024


def ring(key_id: str = "k1", key: bytes = KEY) -> Keyring:
    return Keyring({key_id: key})


def codec(**options: Any) -> EnvelopeCodec:
    return EnvelopeCodec(ring(), **options)


def task(task_id: str = "t1", **fields: Any) -> TaskSubmitted:
    return TaskSubmitted(task_id=task_id, handler="noop", reply_to="client-1", **fields)


def heartbeat(node_id: str = "n1") -> NodeHeartbeat:
    return NodeHeartbeat(
        node_id=node_id,
        seq=1,
        started_at=1.0,
        capacity=ResourceVector(cpu=500, memory=500),
        allocated=ResourceVector(cpu=350),
        slots=4,
        running=2,
        free_slots=2,
        measured_cpu=0.7,
        measured_memory=0.3,
    )


def seal(
    plain: bytes,
    *,
    kind: str = "task.submitted",
    flags: int = 0,
    key_id: str = "k1",
    key: bytes = KEY,
    version: int = 1,
    magic: bytes = MAGIC,
) -> bytes:
    """An envelope around arbitrary plaintext, built by hand per the wire format."""
    nonce = os.urandom(12)
    header = (
        magic
        + bytes((version, flags, len(key_id)))
        + key_id.encode()
        + bytes((len(kind),))
        + kind.encode()
        + nonce
    )
    aead = ChaCha20Poly1305(key) if (flags >> 2) & 3 == 1 else AESGCM(key)
    return header + aead.encrypt(nonce, plain, header)


def payload(items: list[Any], version: int = 1) -> bytes:
    packed: bytes = msgpack.packb({"v": version, "items": items})
    return packed


def task_item() -> dict[str, Any]:
    return task().model_dump(mode="python", exclude={"kind"})


def header_flags(envelope: bytes) -> int:
    return envelope[4]


# -- round trips -----------------------------------------------------------------


def test_codec_satisfies_the_protocol() -> None:
    implementation: Codec = codec()
    message = task()
    assert implementation.decode(implementation.encode([message])) == [message]


@pytest.mark.parametrize(
    "message",
    [
        task(params={"x": [1, 2.5, "y", None, {"z": True}]}, data=b"\x00\x01"),
        heartbeat(),
        Alert(reason="node-down", severity="critical", detail="n3 missed heartbeats"),
        DataChunk(
            upload_id="u1",
            digest="ab" * 32,
            index=0,
            total_chunks=1,
            total_size=3,
            offset=0,
            data=b"abc",
        ),
    ],
)
def test_single_message_round_trip(message: Message) -> None:
    c = codec()
    envelope = c.encode([message])
    assert c.decode(envelope) == [message]
    assert header_flags(envelope) & FLAG_BATCH == 0
    assert c.peek_kind(envelope) == message.kind


def test_batch_round_trip_sets_the_batch_flag() -> None:
    c = codec()
    batch = [heartbeat(f"n{i}") for i in range(5)]
    envelope = c.encode(batch)
    assert header_flags(envelope) & FLAG_BATCH
    assert c.decode(envelope) == batch


def test_raw_round_trip() -> None:
    c = codec()
    item = task_item()
    assert c.decode_raw(c.encode_raw("task.submitted", [item])) == ("task.submitted", [item])
    assert c.decode_raw(c.encode_raw("task.submitted", (item, item)))[1] == [item, item]


def test_buffer_inputs_decode() -> None:
    c = codec()
    message = task()
    envelope = c.encode([message])
    # Typed as bytes, but any buffer works (a broker client may hand over a view).
    assert c.decode(bytearray(envelope)) == [message]  # type: ignore[arg-type]
    assert c.decode(memoryview(envelope)) == [message]  # type: ignore[arg-type]


def test_chacha_and_aes_interoperate_on_one_keyring() -> None:
    aes, chacha = codec(), codec(cipher="chacha20-poly1305")
    first, second = heartbeat(), heartbeat("n9")
    envelope = chacha.encode([first])
    assert (header_flags(envelope) >> 2) & 3 == 1
    assert aes.decode(envelope) == [first]
    assert chacha.decode(aes.encode([second])) == [second]


def test_rotation_in_three_steps() -> None:
    old, new = ("old", KEY), ("new", OTHER_KEY)
    before = EnvelopeCodec(Keyring(dict([old])))
    added = EnvelopeCodec(Keyring(dict([old, new]), active_key_id="old"))
    active = EnvelopeCodec(Keyring(dict([old, new]), active_key_id="new"))
    retired = EnvelopeCodec(Keyring(dict([new])))
    in_flight = before.encode([task("t-old")])
    # Step 1: everyone can read the new key; nobody writes with it yet.
    assert added.encode([task()])[6:9] == b"old"
    # Step 2: the new key writes; messages under the old key still decode.
    from_active = active.encode([task("t-new")])
    assert from_active[6:9] == b"new"
    assert added.decode(from_active)[0].task_id == "t-new"  # type: ignore[attr-defined]
    assert active.decode(in_flight)[0].task_id == "t-old"  # type: ignore[attr-defined]
    # Step 3: the old key is gone.
    assert retired.decode(from_active)[0].task_id == "t-new"  # type: ignore[attr-defined]
    with pytest.raises(UnknownKeyError):
        retired.decode(in_flight)


def test_from_settings() -> None:
    import base64

    settings = BosonSettings(
        keys=SecretStr(f"k1:{base64.b64encode(KEY).decode()}"),
        cipher="chacha20-poly1305",
        max_message_bytes=8192,
        compress_min_bytes=100,
        zstd_level=5,
    )
    c = EnvelopeCodec.from_settings(settings)
    assert c.max_message_bytes == 8192
    assert c.keyring.active_key_id == "k1"
    envelope = c.encode([task(params={"text": "abc" * 200})])
    assert header_flags(envelope) == (1 << 2) | FLAG_COMPRESSED
    assert codec().decode(envelope)[0].params == {"text": "abc" * 200}  # type: ignore[attr-defined]


def test_from_settings_without_keys_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        EnvelopeCodec.from_settings(BosonSettings())


@pytest.mark.parametrize(
    "options",
    [
        {"cipher": "rot13"},
        {"max_message_bytes": 10},
        {"compress_min_bytes": -1},
        {"zstd_level": 0},
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        codec(**options)


def test_repr_names_the_key_id_only() -> None:
    text = repr(codec())
    assert "k1" in text
    assert KEY.hex() not in text


# -- compression -----------------------------------------------------------------


def test_small_messages_are_not_compressed() -> None:
    envelope = codec().encode([task(params={"text": "a" * 2000})])
    assert header_flags(envelope) & FLAG_COMPRESSED == 0


def test_compressible_large_messages_are_compressed_with_content_size() -> None:
    c = codec()
    message = task(data=b"timestamp,value\n" * 10_000)
    envelope = c.encode([message])
    assert header_flags(envelope) & FLAG_COMPRESSED
    assert len(envelope) < 10_000
    header_len = 6 + 2 + 1 + len("task.submitted") + 12
    frame = AESGCM(KEY).decrypt(
        envelope[header_len - 12 : header_len], envelope[header_len:], envelope[:header_len]
    )
    assert zstandard.frame_content_size(frame) > 100_000
    assert c.decode(envelope) == [message]


def test_incompressible_large_messages_are_not_compressed() -> None:
    message = task(data=os.urandom(256 * 1024))
    envelope = codec().encode([message])
    assert header_flags(envelope) & FLAG_COMPRESSED == 0
    assert codec().decode(envelope) == [message]


def test_compress_min_bytes_zero_still_needs_savings() -> None:
    c = codec(compress_min_bytes=0)
    assert header_flags(c.encode([task(params={"t": "x" * 500})])) & FLAG_COMPRESSED
    assert header_flags(c.encode_raw("alert", [{"a": 1}])) & FLAG_COMPRESSED == 0


# -- nonces ----------------------------------------------------------------------


def nonce_of(envelope: bytes) -> bytes:
    kind_at = 6 + envelope[5]
    end = kind_at + 1 + envelope[kind_at] + 12
    return envelope[end - 12 : end]


def test_nonces_are_a_fixed_prefix_and_a_counter() -> None:
    c = codec()
    nonces = [nonce_of(c.encode([task()])) for _ in range(5)]
    assert len({n[:8] for n in nonces}) == 1
    assert [int.from_bytes(n[8:], "big") for n in nonces] == [0, 1, 2, 3, 4]
    assert nonce_of(codec().encode([task()]))[:8] != nonces[0][:8]


def test_counter_wrap_draws_a_new_prefix() -> None:
    c = codec()
    c._nonces._state = (b"\xaa" * 8, itertools.count(2**32 - 1))
    last = nonce_of(c.encode([task()]))
    after = nonce_of(c.encode([task()]))
    assert last == b"\xaa" * 8 + b"\xff\xff\xff\xff"
    assert after[:8] != b"\xaa" * 8
    assert after[8:] == b"\x00\x00\x00\x00"
    assert c.decode(c.encode([task()]))


def test_concurrent_use_from_threads() -> None:
    c = codec()
    errors: list[BaseException] = []
    nonces: list[bytes] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                message = task(f"t{n}-{i}", data=f"{n},{i}\n".encode() * 3000)
                envelope = c.encode([message])
                nonces.append(nonce_of(envelope))
                assert c.decode(envelope) == [message]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(nonces)) == len(nonces) == 80


# -- encode errors ---------------------------------------------------------------


def test_encode_refuses_an_empty_envelope() -> None:
    with pytest.raises(EncodeError):
        codec().encode([])
    with pytest.raises(EncodeError):
        codec().encode_raw("alert", [])


def test_encode_refuses_mixed_kinds() -> None:
    with pytest.raises(EncodeError, match="one kind"):
        codec().encode([task(), heartbeat()])


def test_encode_refuses_oversize() -> None:
    with pytest.raises(EncodeError, match="max_message_bytes"):
        codec(max_message_bytes=4096).encode([task(data=os.urandom(5000))])


def test_encode_refuses_unserialisable_values() -> None:
    with pytest.raises(EncodeError) as caught:
        codec().encode([task(params={"x": {1, 2}})])
    assert isinstance(caught.value.__cause__, TypeError)
    with pytest.raises(EncodeError):
        codec().encode_raw("alert", [{"n": 2**70}])


def test_encode_raw_refuses_a_kind_key_and_bad_kinds() -> None:
    with pytest.raises(EncodeError, match="header"):
        codec().encode_raw("alert", [{"kind": "alert"}])
    with pytest.raises(EncodeError):
        codec().encode_raw("bad kind!", [{"a": 1}])
    with pytest.raises(EncodeError):
        codec().encode_raw("", [{"a": 1}])


def test_encode_packs_any_mapping() -> None:
    from types import MappingProxyType

    c = codec()
    envelope = c.encode_raw("alert", [MappingProxyType({"a": MappingProxyType({"b": 1})})])
    assert c.decode_raw(envelope) == ("alert", [{"a": {"b": 1}}])


# -- decode errors, one per type, from real bytes --------------------------------


def test_bad_magic() -> None:
    envelope = codec().encode([task()])
    with pytest.raises(BadMagicError) as caught:
        codec().decode(b"XYZ" + envelope[3:])
    assert caught.value.reason == "bad-magic"
    with pytest.raises(BadMagicError):
        codec().decode(b'{"json": true}')


@pytest.mark.parametrize("data", [b"", b"B", b"BSN", b"BSN\x01", b"BSN\x01\x00"])
def test_truncated_inside_the_first_bytes(data: bytes) -> None:
    with pytest.raises(TruncatedError):
        codec().decode(data)


def test_truncated_header_and_tag() -> None:
    envelope = codec().encode([task()])
    header_len = 6 + 2 + 1 + len("task.submitted") + 12
    for cut in (7, 9, 12, header_len - 1, header_len, header_len + 15):
        with pytest.raises(TruncatedError) as caught:
            codec().decode(envelope[:cut])
        assert caught.value.reason == "truncated"


def test_truncated_ciphertext_fails_authentication() -> None:
    envelope = codec().encode([task()])
    with pytest.raises(AuthenticationError):
        codec().decode(envelope[:-20])


def test_unsupported_version() -> None:
    envelope = codec().encode([task()])
    with pytest.raises(UnsupportedVersionError) as caught:
        codec().decode(envelope[:3] + b"\x02" + envelope[4:])
    assert caught.value.reason == "unsupported-version"


@pytest.mark.parametrize("flags", [0x10, 0x80, 0x08, 0x0C])
def test_reserved_flags_and_ciphers_are_unsupported(flags: int) -> None:
    envelope = codec().encode([task()])
    with pytest.raises(UnsupportedVersionError):
        codec().decode(envelope[:4] + bytes((flags,)) + envelope[5:])


def test_oversize_is_refused_before_anything_else() -> None:
    c = codec(max_message_bytes=4096)
    with pytest.raises(OversizeError) as caught:
        c.decode(b"not even an envelope" * 300)
    assert caught.value.reason == "oversize"
    big = codec().encode([task(data=os.urandom(5000))])
    with pytest.raises(OversizeError):
        c.decode(big)


def test_unknown_key_id() -> None:
    envelope = EnvelopeCodec(ring("other", OTHER_KEY)).encode([task()])
    with pytest.raises(UnknownKeyError, match="'other'") as caught:
        codec().decode(envelope)
    assert caught.value.reason == "unknown-key"


def test_wrong_key_with_a_known_id_fails_authentication() -> None:
    envelope = EnvelopeCodec(ring("k1", OTHER_KEY)).encode([task()])
    with pytest.raises(AuthenticationError) as caught:
        codec().decode(envelope)
    assert caught.value.reason == "authentication"
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize("position", [-1, -17, -30, 30])
def test_tampered_bytes_fail_authentication(position: int) -> None:
    envelope = bytearray(codec().encode([task()]))
    envelope[position] ^= 0x01
    with pytest.raises(AuthenticationError):
        codec().decode(bytes(envelope))


def test_tampered_kind_and_flags_fail_authentication() -> None:
    c = codec()
    envelope = c.encode([heartbeat()])
    kind_at = 6 + envelope[5] + 1
    # "node.heartbeat" → "node.heartbeaT": still a readable kind, but authenticated.
    forged = bytearray(envelope)
    forged[kind_at + len("node.heartbeat") - 1] = ord("T")
    with pytest.raises(AuthenticationError):
        c.decode(bytes(forged))
    forged = bytearray(envelope)
    forged[4] |= FLAG_BATCH
    with pytest.raises(AuthenticationError):
        c.decode(bytes(forged))


def test_decompression_bomb_declaring_past_the_limit() -> None:
    frame = zstandard.ZstdCompressor(level=19).compress(bytes(32 * MIB))
    assert len(frame) < 4096
    envelope = seal(frame, flags=FLAG_COMPRESSED)
    with pytest.raises(DecompressionBombError) as caught:
        codec().decode(envelope)
    assert caught.value.reason == "decompression-bomb"


def test_decompression_bomb_without_a_declared_size() -> None:
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    frame = compressor.compress(payload([task_item()]))
    assert zstandard.frame_content_size(frame) == -1
    with pytest.raises(DecompressionBombError, match="declare"):
        codec().decode(seal(frame, flags=FLAG_COMPRESSED))


def test_decompression_bomb_expanding_past_its_declared_size() -> None:
    frame = bytearray(zstandard.ZstdCompressor().compress(bytes(MIB)))
    assert frame[4] == 0xA0  # single segment, 4-byte content size at offset 5
    frame[5:9] = (1000).to_bytes(4, "little")
    assert zstandard.frame_content_size(bytes(frame)) == 1000
    with pytest.raises(DecompressionBombError, match="expands") as caught:
        codec().decode(seal(bytes(frame), flags=FLAG_COMPRESSED))
    assert caught.value.__cause__ is not None


def test_compressed_flag_on_a_non_frame_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError):
        codec().decode(seal(b"definitely not zstd", flags=FLAG_COMPRESSED))


def test_trailing_bytes_after_the_frame_are_malformed() -> None:
    frame = zstandard.ZstdCompressor().compress(payload([task_item()]))
    with pytest.raises(MalformedPayloadError):
        codec().decode(seal(frame + b"junk", flags=FLAG_COMPRESSED))


@pytest.mark.parametrize(
    ("plain", "flags"),
    [
        (b"\xc1", 0),  # never-used msgpack byte
        (b"\x92\x01", 0),  # array cut short
        (msgpack.packb([1, 2]), 0),
        (msgpack.packb({"v": 1}), 0),
        (msgpack.packb({"v": 1, "items": [], "x": 1}), 0),
        (msgpack.packb({"v": 1, "items": []}), 0),
        (msgpack.packb({"v": "1", "items": [{}]}), 0),
        (msgpack.packb({"v": 0, "items": [{}]}), 0),
        (msgpack.packb({"v": True, "items": [{}]}), 0),
        (msgpack.packb({"v": 1, "items": {}}), 0),
        (msgpack.packb({"v": 1, "items": [1]}), 0),
        (msgpack.packb({"v": 1, "items": [{}, {}]}), 0),  # batch flag missing
        (msgpack.packb({"v": 1, "items": [{}]}), FLAG_BATCH),  # batch flag on one item
        (msgpack.packb({"v": 1, "items": [{}]}) + b"\x00", 0),  # trailing data
        (msgpack.packb({"v": 1, "items": [{1: 2}]}), 0),  # non-string key
        (msgpack.packb({"v": 1, "items": [{"t": msgpack.ExtType(5, b"x")}]}), 0),
        (msgpack.packb({"v": 1, "items": [{"t": msgpack.ExtType(5, b"")}]}), 0),
        (b"\x81\xa1v\xc7\x00\xff", 0),  # a timestamp extension with no data
    ],
)
def test_malformed_payloads(plain: bytes, flags: int) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        codec().decode(seal(plain, flags=flags))
    assert caught.value.reason == "malformed-payload"


@pytest.mark.parametrize(
    "stamp",
    [
        msgpack.Timestamp(1, 0),  # 4-byte form
        msgpack.Timestamp(1, 5),  # 8-byte form
        msgpack.Timestamp(2**40, 5),  # 12-byte form
    ],
)
@pytest.mark.parametrize(
    "where",
    ["params", "nested params", "float field", "envelope version"],
)
def test_timestamp_extensions_are_malformed_anywhere(stamp: msgpack.Timestamp, where: str) -> None:
    # msgpack decodes extension type -1 without calling ext_hook.
    item = task_item()
    version: Any = 1
    if where == "params":
        item["params"] = {"t": stamp}
    elif where == "nested params":
        item["params"] = {"rows": [{"at": [1, stamp]}]}
    elif where == "float field":
        item["complexity"] = stamp
    else:
        version = stamp
    plain = msgpack.packb({"v": version, "items": [item]}, datetime=False)
    with pytest.raises(MalformedPayloadError) as caught:
        codec().decode(seal(plain))
    assert caught.value.reason == "malformed-payload"
    with pytest.raises(MalformedPayloadError):
        codec().decode_raw(seal(plain))


def test_timestamp_extension_inside_a_compressed_batch_is_malformed() -> None:
    items = [
        {**task_item(), "data": b"x" * 9000},
        {**task_item(), "params": {"t": msgpack.Timestamp(1, 0)}},
    ]
    frame = zstandard.ZstdCompressor().compress(payload(items))
    with pytest.raises(MalformedPayloadError):
        codec().decode(seal(frame, flags=FLAG_COMPRESSED | FLAG_BATCH))


@pytest.mark.parametrize("length", [0, 33, 255])
def test_a_key_id_no_keyring_can_hold_is_unknown_key(length: int) -> None:
    # Decided rule (wire-format §6): the header fits, so it is not truncated;
    # an id of length 0 or over 32 is one no keyring holds.
    envelope = seal(payload([task_item()]), key_id="k" * length)
    with pytest.raises(UnknownKeyError) as caught:
        codec().decode(envelope)
    assert caught.value.reason == "unknown-key"
    assert "not a valid key id" in str(caught.value)


def test_schema_version_zero_is_malformed_and_an_unread_version_is_schema() -> None:
    # Decided rule (wire-format §5-6): 'v' must be a positive integer (shape);
    # a positive version the kind does not read is a schema mismatch.
    with pytest.raises(MalformedPayloadError):
        codec().decode(seal(payload([task_item()], version=0)))
    with pytest.raises(SchemaError):
        codec().decode(seal(payload([task_item()], version=5)))


def test_unknown_kind_is_refused_after_authentication() -> None:
    envelope = seal(payload([{"a": 1}]), kind="no.such.kind")
    c = codec()
    assert c.decode_raw(envelope) == ("no.such.kind", [{"a": 1}])
    with pytest.raises(UnknownKindError, match=r"no\.such\.kind") as caught:
        c.decode(envelope)
    assert caught.value.reason == "unknown-kind"
    with pytest.raises(UnknownKindError):
        c.decode(seal(payload([{"a": 1}]), kind="bad kind!"))


def test_schema_errors() -> None:
    item = task_item()
    with pytest.raises(SchemaError) as caught:
        codec().decode(seal(payload([{**item, "complexity": -1.0}])))
    assert caught.value.reason == "schema"
    assert "complexity" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_schema_error_names_the_bad_item_of_a_batch() -> None:
    items = [task_item(), {**task_item(), "task_id": ""}]
    with pytest.raises(SchemaError, match="item 1"):
        codec().decode(seal(payload(items), flags=FLAG_BATCH))


def test_schema_version_mismatch() -> None:
    with pytest.raises(SchemaError, match="schema version 5"):
        codec().decode(seal(payload([task_item()], version=5)))


def test_a_task_of_the_previous_version_is_read_without_retry_errors() -> None:
    (task,) = codec().decode(seal(payload([task_item()], version=1)))
    assert isinstance(task, TaskSubmitted)
    assert not task.retry_errors


def test_a_new_reader_takes_the_older_versions_a_kind_declares() -> None:
    """A rolling upgrade: a new transfer service reads an old client's uploads."""
    digest = "ab" * 32
    old_check = {"digest": digest, "upload_id": "u-1", "reply_to": "client-1"}
    old_chunk = {
        "upload_id": "u-1",
        "digest": digest,
        "index": 0,
        "total_chunks": 2,
        "total_size": 8,
        "offset": 0,
        "data": b"1234",
    }
    c = codec()
    (check,) = c.decode(seal(payload([old_check], version=1), kind="data.check"))
    assert isinstance(check, CheckData)
    assert (check.digest, check.fingerprint) == (digest, None)
    (chunk,) = c.decode(seal(payload([old_chunk], version=1), kind="data.chunk"))
    assert isinstance(chunk, DataChunk)
    assert chunk.digest == digest
    # Only the versions declared: not a future one.
    with pytest.raises(SchemaError, match=r"reads \(1, 2\)"):
        c.decode(seal(payload([old_check], version=3), kind="data.check"))


def test_schema_error_text_stays_short() -> None:
    huge = "x" * 100_000
    items = [{**task_item(), huge: 1, "handler": huge, "task_id": huge}]
    with pytest.raises(SchemaError) as caught:
        codec().decode(
            seal(zstandard.ZstdCompressor().compress(payload(items)), flags=FLAG_COMPRESSED)
        )
    assert len(str(caught.value)) <= 600
    assert huge not in str(caught.value)


def test_every_decode_error_is_a_decode_error() -> None:
    for error in (
        BadMagicError,
        UnsupportedVersionError,
        TruncatedError,
        OversizeError,
        DecompressionBombError,
        UnknownKeyError,
        AuthenticationError,
        MalformedPayloadError,
        UnknownKindError,
        SchemaError,
    ):
        assert issubclass(error, DecodeError)


def test_peek_kind() -> None:
    c = codec()
    assert c.peek_kind(c.encode([heartbeat()])) == "node.heartbeat"
    assert c.peek_kind(EnvelopeCodec(ring("other", OTHER_KEY)).encode([task()])) == "task.submitted"
    assert c.peek_kind(b"garbage") is None
    assert c.peek_kind(b"BSN") is None
    assert c.peek_kind(seal(b"x", kind="bad kind!")) is None
