"""Keep freed chunk-sized buffers for reuse instead of handing them back to the kernel.

Every chunk passes through several fresh ~1 MiB buffers on its way to disk:
the frame body, the decrypted payload, the decompressed bytes. glibc's malloc
gives the free top of a heap back to the kernel once more than its trim
threshold is free — by default about twice the largest block freed lately,
~2 MiB here — so the next buffers fault their pages in again and the kernel
zeroes every one of them, which costs the chunk path (decode, decompress,
write, hash) a large share of its CPU (``docs/performance.md#transfer``).

``mallopt(M_TRIM_THRESHOLD, n)`` keeps up to ``n`` free bytes at a heap's top;
``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` serves chunk-sized blocks from the heaps
(and turns off the threshold's own drift). Process-wide, so only the service
entry points apply it, never an embedded service in a user's process.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable
from typing import Final

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD: Final = -1
M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD_BYTES: Final = 32 * 1024 * 1024
"""glibc's largest allowed mmap threshold on 64-bit (half its heap size)."""

Mallopt = Callable[[int, int], int]


def _libc_mallopt() -> Mallopt | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int)
    function.restype = ctypes.c_int
    result: Mallopt = function
    return result


def retain_freed_memory(trim_threshold: int, *, mallopt: Mallopt | None = None) -> bool:
    """Keep up to ``trim_threshold`` freed bytes per heap (0: leave malloc alone).

    True if malloc took both settings; False where there is no glibc
    ``mallopt`` (or it refused), which changes nothing but speed.
    """
    if trim_threshold <= 0:
        return False
    function = mallopt if mallopt is not None else _libc_mallopt()
    if function is None:
        return False
    applied = (
        function(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        and function(M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)) == 1
    )
    if not applied:
        logger.info("malloc did not take the retain settings; running without them")
    return applied


__all__ = ["MMAP_THRESHOLD_BYTES", "M_MMAP_THRESHOLD", "M_TRIM_THRESHOLD", "retain_freed_memory"]
