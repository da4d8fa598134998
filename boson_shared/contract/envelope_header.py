"""Reading an envelope's header: its structural checks, and what a checked header opens with.

The slow path of decoding (``docs/wire-format.md`` §1–2): :func:`parse_header`
checks size, magic, version, flags and the length-prefixed key id and kind,
refusing with the typed :class:`~boson_shared.errors.DecodeError` each failure
deserves. The codec runs it once per distinct header prefix and caches the
:class:`Route` it leads to; every later envelope with that prefix skips it.
"""

from __future__ import annotations

from typing import Final, NamedTuple, TypeAlias

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from boson_shared.contract.envelope import (
    CIPHER_MASK,
    CIPHER_SHIFT,
    MAGIC,
    NONCE_BYTES,
    RESERVED_FLAGS,
    TAG_BYTES,
    VERSION,
)
from boson_shared.errors import (
    BadMagicError,
    OversizeError,
    TruncatedError,
    UnsupportedVersionError,
)

AEAD: TypeAlias = AESGCM | ChaCha20Poly1305
AEAD_CLASSES: Final[dict[int, type[AESGCM] | type[ChaCha20Poly1305]]] = {
    0: AESGCM,
    1: ChaCha20Poly1305,
}
"""The AEAD class of each cipher id a header may name (the values of ``CIPHERS``)."""


class Route(NamedTuple):
    """What a checked header prefix decodes to (cached per prefix)."""

    header_len: int
    compressed: bool
    batch: bool
    opener: AEAD
    kind: str | None
    key_id: str


def parse_header(data: bytes, max_bytes: int) -> tuple[int, int, bytes, bytes]:
    """(header length, flags, key id, kind) after the size and structure checks."""
    size = len(data)
    if size > max_bytes:
        raise OversizeError(f"message of {size} bytes exceeds max_message_bytes={max_bytes}")
    if data[:3] != MAGIC[: min(size, 3)]:
        raise BadMagicError("the bytes do not start with the Boson magic b'BSN'")
    if size < 5:
        raise TruncatedError(f"message of {size} bytes ends inside the header")
    if data[3] != VERSION:
        raise UnsupportedVersionError(f"envelope version {data[3]} (this build reads 1)")
    flags = data[4]
    if flags & RESERVED_FLAGS or (flags & CIPHER_MASK) >> CIPHER_SHIFT not in AEAD_CLASSES:
        raise UnsupportedVersionError(f"envelope flags 0x{flags:02x} use unknown features")
    if size < 6:
        raise TruncatedError(f"message of {size} bytes ends inside the header")
    kind_at = 6 + data[5]
    if size <= kind_at:
        raise TruncatedError(f"message of {size} bytes ends inside the header")
    kind_end = kind_at + 1 + data[kind_at]
    header_len = kind_end + NONCE_BYTES
    if size < header_len + TAG_BYTES:
        raise TruncatedError(
            f"message of {size} bytes ends before its header and tag ({header_len + TAG_BYTES})"
        )
    return header_len, flags, bytes(data[6:kind_at]), bytes(data[kind_at + 1 : kind_end])


__all__ = ["AEAD", "AEAD_CLASSES", "Route", "parse_header"]
