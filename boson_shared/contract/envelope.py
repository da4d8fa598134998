"""The envelope's layout and the codec seam (``docs/wire-format.md``).

What a reader or writer of the wire format needs to agree on — magic,
version, flag bits, cipher ids, field sizes — and the :class:`Codec`
Protocol the runtime depends on. :mod:`boson_shared.contract.codec` implements it.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

from boson_shared.contract.messages import Message

MAGIC: Final = b"BSN"
VERSION: Final = 1
FLAG_COMPRESSED: Final = 0x01
FLAG_BATCH: Final = 0x02
CIPHER_SHIFT: Final = 2
CIPHER_MASK: Final = 0x0C
RESERVED_FLAGS: Final = 0xF0
CIPHERS: Final[dict[str, int]] = {"aes-256-gcm": 0, "chacha20-poly1305": 1}
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
MIN_ENVELOPE_BYTES: Final = 3 + 1 + 1 + 1 + 1 + 1 + 1 + NONCE_BYTES + TAG_BYTES
KIND_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,255}")


class Codec(Protocol):
    """Turns messages into envelope bytes and back (the runtime's only seam to the wire)."""

    def encode(self, messages: Sequence[Message]) -> bytes:
        """One envelope for one or more messages of one kind."""
        ...

    def decode(self, data: bytes) -> list[Message]:
        """The validated messages of an envelope, or a typed ``DecodeError``."""
        ...

    def encode_raw(self, kind: str, items: Sequence[Mapping[str, Any]]) -> bytes:
        """One envelope for plain item maps (no ``kind`` key), without pydantic."""
        ...

    def decode_raw(self, data: bytes) -> tuple[str, list[dict[str, Any]]]:
        """The kind and plain item maps of an envelope, without pydantic."""
        ...

    def peek_kind(self, data: bytes) -> str | None:
        """The header's kind, unauthenticated (for dead-letter headers), or None."""
        ...


class NonceSequence:
    """Nonces for one key holder: a random 8-byte prefix + a 4-byte counter.

    Unique per key without a getrandom syscall per message (the wire format's
    nonce rule); a new prefix is drawn when the counter would wrap.
    ``next()`` on ``itertools.count`` is atomic under the GIL, so each
    (prefix, counter) pair is handed out once even across threads.
    """

    _COUNTER_LIMIT: Final = 1 << 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = self._fresh()

    @staticmethod
    def _fresh() -> tuple[bytes, Iterator[int]]:
        return os.urandom(8), itertools.count()

    def next(self) -> bytes:
        while True:
            state = self._state
            counter = next(state[1])
            if counter < self._COUNTER_LIMIT:
                return state[0] + counter.to_bytes(4, "big")
            with self._lock:
                if self._state is state:
                    self._state = self._fresh()


__all__ = [
    "CIPHERS",
    "CIPHER_MASK",
    "CIPHER_SHIFT",
    "FLAG_BATCH",
    "FLAG_COMPRESSED",
    "KIND_PATTERN",
    "MAGIC",
    "MIN_ENVELOPE_BYTES",
    "NONCE_BYTES",
    "RESERVED_FLAGS",
    "TAG_BYTES",
    "VERSION",
    "Codec",
    "NonceSequence",
]
