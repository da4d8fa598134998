"""Malformed envelopes for the fuzz suite: a sealer and hypothesis strategies.

Every envelope these strategies draw must be refused by the codec of the
keyring they were made for — as a ``DecodeError`` or, for a well-formed
message of a kind the target queue does not take, as ``unexpected-kind``.
Each draw is a :class:`Bad` that names its category, so a failure says which
family slipped through.

The sealer writes envelopes by the byte layout of ``docs/wire-format.md``
(not through ``EnvelopeCodec``), so that valid crypto can wrap payloads the
codec itself would never produce.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import msgpack
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from boson_shared.contract.codec import FLAG_BATCH, FLAG_COMPRESSED, MAGIC
from boson_shared.contract.keyring import Keyring

_KEY_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_JUNK_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63), max_size=3),
)


@dataclass(frozen=True)
class Bad:
    """One malformed envelope and the family it belongs to."""

    category: str
    body: bytes


@dataclass(frozen=True)
class Sealer:
    """Writes envelopes by hand under one keyring's active key."""

    key_id: str
    key: bytes

    @classmethod
    def active(cls, keyring: Keyring) -> Sealer:
        return cls(keyring.active_key_id, keyring.key(keyring.active_key_id))

    def seal(
        self,
        kind: str,
        plain: bytes,
        *,
        flags: int = 0,
        key_id: str | None = None,
        key: bytes | None = None,
        version: int = 1,
    ) -> bytes:
        kid = (key_id or self.key_id).encode("ascii")
        kind_bytes = kind.encode("ascii")
        nonce = os.urandom(12)
        header = (
            MAGIC
            + bytes((version, flags, len(kid)))
            + kid
            + bytes((len(kind_bytes),))
            + kind_bytes
            + nonce
        )
        cipher = ChaCha20Poly1305 if (flags >> 2) & 3 == 1 else AESGCM
        return header + cipher(key or self.key).encrypt(nonce, plain, header)

    def seal_items(self, kind: str, items: list[Any], **options: Any) -> bytes:
        plain = msgpack.packb({"v": 1, "items": items}, use_bin_type=True)
        flags = FLAG_BATCH if len(items) > 1 else 0
        return self.seal(kind, plain, flags=flags, **options)


def header_length(envelope: bytes) -> int:
    """The length of an envelope's header (the AAD), nonce included."""
    kind_at = 6 + envelope[5]
    return kind_at + 1 + envelope[kind_at] + 12


def _lying_frame(declared: int) -> bytes:
    """A zstd frame of 1 MiB of zeros that declares only ``declared`` bytes."""
    frame = bytearray(zstandard.ZstdCompressor().compress(bytes(1 << 20)))
    assert frame[4] == 0xA0  # single segment, 4-byte content size at offset 5
    frame[5:9] = declared.to_bytes(4, "little")
    return bytes(frame)


def malformed(
    sealer: Sealer,
    *,
    kind: str,
    sample: bytes,
    wrong_kind: bytes,
    max_message_bytes: int,
) -> st.SearchStrategy[Bad]:
    """Every family of bad input, for a queue that takes ``kind``.

    ``sample`` is a valid envelope of ``kind`` (the base of truncations and
    bit flips); ``wrong_kind`` a valid envelope of a kind the queue refuses.
    """
    head = header_length(sample)
    flip = st.integers(min_value=0, max_value=7).map(lambda bit: 1 << bit)

    def flipped(position: int, mask: int) -> bytes:
        out = bytearray(sample)
        out[position] ^= mask
        return bytes(out)

    def item_junk(fields: dict[str, Any]) -> bytes:
        return sealer.seal_items(kind, [fields])

    bombs = st.sampled_from(
        [
            # Declares more than the limit (32 MiB of zeros in ~1 KiB).
            sealer.seal(
                kind,
                zstandard.ZstdCompressor(level=19).compress(bytes(32 << 20)),
                flags=FLAG_COMPRESSED,
            ),
            # Declares nothing at all.
            sealer.seal(
                kind,
                zstandard.ZstdCompressor(write_content_size=False).compress(bytes(100_000)),
                flags=FLAG_COMPRESSED,
            ),
            # Declares 1,000 bytes and expands to 1 MiB.
            sealer.seal(kind, _lying_frame(1000), flags=FLAG_COMPRESSED),
            # Not a zstd frame at all.
            sealer.seal(kind, b"not zstd", flags=FLAG_COMPRESSED),
        ]
    )
    families: list[st.SearchStrategy[Bad]] = [
        st.binary(max_size=300).map(lambda b: Bad("random-bytes", b)),
        st.binary(max_size=300).map(lambda b: Bad("random-after-magic", MAGIC + b"\x01" + b)),
        st.integers(min_value=0, max_value=len(sample) - 1).map(
            lambda n: Bad("truncation", sample[:n])
        ),
        st.builds(flipped, st.integers(min_value=0, max_value=head - 1), flip).map(
            lambda b: Bad("header-bit-flip", b)
        ),
        st.builds(flipped, st.integers(min_value=head, max_value=len(sample) - 1), flip).map(
            lambda b: Bad("ciphertext-bit-flip", b)
        ),
        st.binary(min_size=32, max_size=32)
        .filter(lambda k: k != sealer.key)
        .map(lambda k: Bad("wrong-key", sealer.seal_items(kind, [{}], key=k))),
        st.text(_KEY_ID_CHARS, min_size=1, max_size=32)
        .filter(lambda k: k != sealer.key_id)
        .map(lambda k: Bad("unknown-key-id", sealer.seal_items(kind, [{}], key_id=k))),
        st.integers(min_value=0, max_value=255)
        .filter(lambda v: v != 1)
        .map(lambda v: Bad("unknown-version", sample[:3] + bytes((v,)) + sample[4:])),
        st.sampled_from([0x08, 0x0C, 0x10, 0x80, 0xF0]).map(
            lambda f: Bad("reserved-flags", flipped(4, f))
        ),
        bombs.map(lambda b: Bad("zstd-bomb", b)),
        st.integers(min_value=1, max_value=4096).map(
            lambda extra: Bad("oversize", MAGIC + b"\x01" + bytes(max_message_bytes + extra - 4))
        ),
        st.binary(max_size=64).map(lambda p: Bad("not-msgpack", sealer.seal(kind, b"\xc1" + p))),
        st.sampled_from(
            [
                {"v": 1},
                {"v": 1, "items": []},
                {"v": 1, "items": {}},
                {"v": 1, "items": [1]},
                {"v": 0, "items": [{}]},
                {"v": "1", "items": [{}]},
                [1, 2],
            ]
        ).map(lambda p: Bad("wrong-shape", sealer.seal(kind, msgpack.packb(p, use_bin_type=True)))),
        st.integers(min_value=2, max_value=2**31).map(
            lambda v: Bad(
                "schema-version",
                sealer.seal(kind, msgpack.packb({"v": v, "items": [{}]}, use_bin_type=True)),
            )
        ),
        st.from_regex(r"[a-z]{1,12}\.[a-z]{1,12}", fullmatch=True).map(
            lambda k: Bad("unknown-kind", sealer.seal_items(f"x-{k}", [{}]))
        ),
        st.dictionaries(st.text(max_size=12), _JUNK_VALUES, max_size=6).map(
            lambda fields: Bad("schema-invalid", item_junk(fields))
        ),
        st.just(Bad("unexpected-kind", wrong_kind)),
    ]
    return st.one_of(families)


def draw(strategy: st.SearchStrategy[Bad], count: int, *, per_example: int = 50) -> list[Bad]:
    """``count`` draws of ``strategy``, generated by hypothesis (no shrinking, no database)."""
    drawn: list[Bad] = []

    @settings(
        max_examples=count // per_example + 1,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(strategy, min_size=per_example, max_size=per_example))
    def collect(batch: list[Bad]) -> None:
        drawn.extend(batch)

    while len(drawn) < count:
        collect()
    return drawn[:count]


__all__ = ["Bad", "Sealer", "draw", "header_length", "malformed"]
