"""How a blob travels as chunks: the layout, the chunk encoding, the options.

A blob of ``size`` bytes cut at ``chunk_size`` is ``ceil(size / chunk_size)``
chunks (one empty chunk for an empty blob); chunk ``i`` covers
``[i * chunk_size, min((i + 1) * chunk_size, size))``. The receiver learns
``chunk_size`` from the chunks themselves and refuses any that does not fit.

A chunk's bytes travel as they are or as one zstd frame (``encoding``). The
data plane compresses chunks itself, at a fast level and off the event loop:
the envelope's own zstd (level 3 by default) is much slower on CSV for about
the same ratio. The envelope codec's probe then sees incompressible
bytes and leaves them alone.

The level's match-finder hash table is shrunk to ``2**hash_log`` entries
(10: 4 KiB, it stays in L1 cache; level 1 alone uses 2**14): on numeric CSV
that compresses much faster for a slightly larger frame, and the frames
decompress faster too; on text with long-range repeats the frame grows more
(``docs/performance.md#transfer``). It is a sender-side choice: any zstd frame decodes the same way.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Final, Literal, overload

import zstandard

from boson_shared.errors import ConfigError
from boson_shared.transfer.errors import ChunkEncodingError

MIB: Final = 1024 * 1024
Encoding = Literal["identity", "zstd"]

_PROBE_CHUNK: Final = 1024
_PROBE_CHUNKS: Final = 4
_PROBE_MAX_RATIO: Final = 0.9
_MIN_COMPRESS: Final = 4096
HASH_LOG_MIN: Final = 6
FINGERPRINT_SPAN: Final = MIB


@dataclass(frozen=True)
class TransferOptions:
    """How a client or executor uses the data plane."""

    inline_max_bytes: int = 256 * 1024
    """Data and results up to this size travel inline; larger ones as chunks."""
    chunk_size: int = MIB
    zstd_level: int = 1
    zstd_hash_log: int | None = 10
    """zstd hash table size (log2 entries) of chunk compression; None: the level's own."""
    window: int = 8
    """Chunks encoded or awaiting their publisher confirm at once."""
    check_timeout_s: float = 10.0
    """How long to wait for the store's answer to ``CheckData``."""
    stored_timeout_s: float = 30.0
    """After the last chunk, how long to wait for ``DataStored`` before asking again."""
    rounds: int = 4
    """Check-and-send rounds before an upload gives up."""
    fetch_idle_timeout_s: float = 15.0
    """A fetch with no chunk for this long is asked again (then given up)."""
    fetch_attempts: int = 3
    cache_bytes: int = 256 * MIB
    """Fetched blobs kept (least recently used go first)."""

    def __post_init__(self) -> None:
        if not 1024 <= self.chunk_size <= 64 * MIB:
            raise ConfigError("chunk_size must be between 1 KiB and 64 MiB")
        if self.inline_max_bytes < 0:
            raise ConfigError("inline_max_bytes must not be negative")
        if not -5 <= self.zstd_level <= 19:
            raise ConfigError("zstd_level must be between -5 and 19")
        if self.zstd_hash_log is not None and not HASH_LOG_MIN <= self.zstd_hash_log <= 30:
            raise ConfigError(f"zstd_hash_log must be between {HASH_LOG_MIN} and 30")
        if self.window < 1 or self.rounds < 1 or self.fetch_attempts < 1:
            raise ConfigError("window, rounds and fetch_attempts must be >= 1")
        if min(self.check_timeout_s, self.stored_timeout_s, self.fetch_idle_timeout_s) <= 0:
            raise ConfigError("timeouts must be positive")
        if self.cache_bytes < 0:
            raise ConfigError("cache_bytes must not be negative")


@dataclass(frozen=True, slots=True)
class Span:
    """One chunk's place in its blob."""

    index: int
    offset: int
    size: int


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of a blob of ``size`` bytes (an empty blob is one empty chunk)."""
    return max(1, -(-size // chunk_size))


def spans(size: int, chunk_size: int) -> list[Span]:
    """Every chunk of a blob, in order."""
    return [
        Span(i, i * chunk_size, min(chunk_size, size - i * chunk_size))
        for i in range(chunk_count(size, chunk_size))
    ]


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """The content address of ``data`` (hashlib releases the GIL on large inputs)."""
    return hashlib.sha256(data).hexdigest()


def fingerprint(data: bytes | bytearray | memoryview) -> str:
    """A cheap stand-in for the digest, known before the blob is read through.

    SHA-256 of the size (8 bytes, big-endian), the first MiB and what
    follows the first MiB of the last MiB: at most 2 MiB hashed, whatever
    the size. Equal content has equal fingerprints; unequal content almost
    always has unequal ones, but not always (a blob edited only in its
    middle keeps its fingerprint). So a fingerprint the store knows only
    means "ask by digest"; an unknown one means the content is new to the
    store.
    """
    view = memoryview(data)
    size = len(view)
    hasher = hashlib.sha256(size.to_bytes(8, "big"))
    hasher.update(view[:FINGERPRINT_SPAN])
    hasher.update(view[max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN) :])
    return hasher.hexdigest()


def upload_id_for(fingerprint: str, chunk_size: int) -> str:
    """The id of an upload of this content at this chunking.

    Derived, not random: an uploader that died halfway and one that retries
    later name the same upload, so the store resumes it instead of starting
    over. Derived from the :func:`fingerprint`, not the digest, so that it is
    known before the first chunk leaves: content that shares a fingerprint
    shares the staging too, which the digest check at the end keeps safe.
    """
    return f"{fingerprint}-{chunk_size}"


class _Contexts(threading.local):
    def __init__(self, params: zstandard.ZstdCompressionParameters) -> None:
        self.compressor = zstandard.ZstdCompressor(compression_params=params)
        self.prober = zstandard.ZstdCompressor(level=1)
        self.decompressor = zstandard.ZstdDecompressor()


class ChunkCoder:
    """Encodes and decodes chunk bytes; thread-safe (per-thread zstd contexts).

    ``max_chunk_bytes`` bounds what a decoded chunk may be: a frame that
    declares more, or none, is refused before anything is allocated.
    """

    def __init__(
        self, *, level: int = 1, hash_log: int | None = 10, max_chunk_bytes: int = 64 * MIB
    ) -> None:
        self._max = max_chunk_bytes
        tuned = {} if hash_log is None else {"hash_log": hash_log}
        params = zstandard.ZstdCompressionParameters.from_level(
            level, write_content_size=True, **tuned
        )
        self._threads = _Contexts(params)

    @overload
    def encode(self, raw: bytes) -> tuple[Encoding, bytes]: ...
    @overload
    def encode(self, raw: memoryview) -> tuple[Encoding, bytes | memoryview]: ...
    def encode(self, raw: bytes | memoryview) -> tuple[Encoding, bytes | memoryview]:
        """The encoding that pays for ``raw`` and the bytes to send (``raw``
        itself when they travel as they are: a view is not copied)."""
        size = len(raw)
        if size < _MIN_COMPRESS or not self._pays(raw):
            return "identity", raw
        packed = self._threads.compressor.compress(raw)
        if len(packed) >= _PROBE_MAX_RATIO * size:
            return "identity", raw
        return "zstd", packed

    def _pays(self, raw: bytes | memoryview) -> bool:
        # A few KiB from spread positions say whether the whole is worth it:
        # compressing an incompressible MiB costs far more than the probe.
        size = len(raw)
        sample: bytes | memoryview
        if size <= 2 * _PROBE_CHUNK * _PROBE_CHUNKS:
            sample = raw
        else:
            view = memoryview(raw)
            step = (size - _PROBE_CHUNK) // (_PROBE_CHUNKS - 1)
            sample = b"".join(
                view[i * step : i * step + _PROBE_CHUNK] for i in range(_PROBE_CHUNKS)
            )
        return len(self._threads.prober.compress(sample)) <= _PROBE_MAX_RATIO * len(sample)

    def decode(self, encoding: str, data: bytes) -> bytes:
        """The chunk's raw bytes; :class:`ChunkEncodingError` when they cannot be."""
        if encoding == "identity":
            if len(data) > self._max:
                raise ChunkEncodingError(
                    f"chunk of {len(data)} bytes exceeds the limit of {self._max}"
                )
            return data
        if encoding != "zstd":
            raise ChunkEncodingError(f"unknown chunk encoding {encoding!r}")
        try:
            declared = zstandard.frame_content_size(data)
        except zstandard.ZstdError as e:
            raise ChunkEncodingError("chunk data is not a zstd frame") from e
        if declared < 0:
            raise ChunkEncodingError("the chunk's zstd frame does not declare its size")
        if declared > self._max:
            raise ChunkEncodingError(
                f"the chunk's zstd frame declares {declared} bytes, over the limit of {self._max}"
            )
        try:
            raw = self._threads.decompressor.decompress(
                data, max_output_size=declared, allow_extra_data=False
            )
        except zstandard.ZstdError as e:
            raise ChunkEncodingError("the chunk's zstd frame does not decompress") from e
        if len(raw) != declared:
            raise ChunkEncodingError("the chunk's zstd frame is shorter than it declares")
        return raw


__all__ = [
    "FINGERPRINT_SPAN",
    "HASH_LOG_MIN",
    "MIB",
    "ChunkCoder",
    "Encoding",
    "Span",
    "TransferOptions",
    "chunk_count",
    "fingerprint",
    "sha256_hex",
    "spans",
    "upload_id_for",
]
