"""Compression where it pays, and decompression that cannot be a bomb.

Part of the envelope (``docs/wire-format.md`` §5–6): payloads are compressed
only when a small spread sample shows zstd gains, and a compressed payload is
expanded only up to the size its frame declares — never past the maximum
message size, and never by growing an allocation.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final

import msgpack
import zstandard

from boson_shared.errors import DecompressionBombError, MalformedPayloadError

# Compressibility probe: a few KiB from spread positions at zstd level 1 costs
# microseconds, where compressing an incompressible MiB costs a millisecond.
_PROBE_CHUNK: Final = 1024
_PROBE_CHUNKS: Final = 4
_PROBE_MAX_RATIO: Final = 0.9


def _pack_default(obj: object) -> object:
    # msgpack packs dicts natively; other mappings (MappingProxyType, …) become dicts.
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to msgpack")


class ThreadContexts(threading.local):
    """zstd contexts and a packer per thread: reused for speed, never shared.

    zstd releases the GIL while it works, so one context used from two threads
    (large messages are encoded off the event loop) would corrupt both streams.
    """

    def __init__(self, level: int) -> None:
        self.packer = msgpack.Packer(default=_pack_default, use_bin_type=True)
        self.compressor = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self.prober = zstandard.ZstdCompressor(level=1, write_content_size=True)
        self.decompressor = zstandard.ZstdDecompressor()


def worth_compressing(prober: zstandard.ZstdCompressor, plain: bytes) -> bool:
    """Whether zstd is worth it, judged on a small spread sample."""
    size = len(plain)
    if size <= 2 * _PROBE_CHUNK * _PROBE_CHUNKS:
        sample = plain
    else:
        view = memoryview(plain)
        step = (size - _PROBE_CHUNK) // (_PROBE_CHUNKS - 1)
        sample = b"".join(view[i * step : i * step + _PROBE_CHUNK] for i in range(_PROBE_CHUNKS))
    return len(prober.compress(sample)) <= _PROBE_MAX_RATIO * len(sample)


def decompress_bounded(decompressor: zstandard.ZstdDecompressor, frame: bytes, limit: int) -> bytes:
    """The frame's content, refused before allocating if it declares more than ``limit``."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as e:
        raise MalformedPayloadError("the compressed payload is not a zstd frame") from e
    if declared < 0:
        raise DecompressionBombError("the zstd frame does not declare its content size")
    if declared > limit:
        raise DecompressionBombError(
            f"the zstd frame declares {declared} bytes, over max_message_bytes={limit}"
        )
    try:
        # The output buffer is the declared size: a frame that expands past
        # it fails inside zstd instead of growing the allocation.
        return decompressor.decompress(frame, max_output_size=limit, allow_extra_data=False)
    except zstandard.ZstdError as e:
        if "too small" in str(e):
            raise DecompressionBombError(
                f"the zstd frame expands past its declared {declared} bytes"
            ) from e
        raise MalformedPayloadError("the zstd frame does not decompress") from e


__all__ = ["ThreadContexts", "decompress_bounded", "worth_compressing"]
