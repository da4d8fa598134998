"""One partial upload in the blob store's staging area, and the file helpers
it shares with the store.

An upload is written chunk by chunk at its offsets into ``staging/<upload id>/data``,
each chunk noted in ``received`` (so a restarted service resumes it), and hashed as
it arrives in order. It becomes a blob only when :class:`~boson_services.transfer.store.BlobStore`
finalizes it: digest checked, file synced, then ``os.replace`` into ``blobs/``.

Everything here is blocking file I/O: the service calls it from worker threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from boson_shared.transfer.chunks import FINGERPRINT_SPAN, chunk_count
from boson_shared.transfer.errors import (
    ChunkConflictError,
    DigestMismatchError,
)

_READ_BLOCK = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2

WritebackStarter = Callable[[int, int, int], None]


def _writeback_starter() -> WritebackStarter | None:
    """``sync_file_range(fd, offset, size, SYNC_FILE_RANGE_WRITE)`` where libc
    has it (Linux), else None.

    It starts writing a range back and returns without waiting. Its outcome is
    ignored: the fsync before a blob is announced is what makes it durable;
    this only gives that fsync less left to do, so announcing a blob does not
    wait for all of it to reach the disk at once.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int

    def start(fd: int, offset: int, size: int) -> None:
        function(fd, offset, size, _SYNC_FILE_RANGE_WRITE)

    return start


START_WRITEBACK: WritebackStarter | None = _writeback_starter()


class Upload:
    """One partial upload in the staging area (thread-safe)."""

    def __init__(
        self,
        directory: Path,
        digest: str | None,
        total_size: int,
        total_chunks: int,
        hash_window: int,
        *,
        write_behind: bool = False,
    ) -> None:
        self.directory = directory
        self.upload_id = directory.name
        self.digest = digest
        self.total_size = total_size
        self.total_chunks = total_chunks
        self.chunk_size: int | None = None
        self.received: dict[int, tuple[int, int]] = {}
        self.reply_tos: set[str] = set()
        self.finalized = False
        self.discarded = False
        self.touched = time.monotonic()
        self._lock = threading.Lock()
        self._writing: set[int] = set()
        self._hash_window = hash_window
        self._writeback = START_WRITEBACK if write_behind else None
        # The blob is hashed as chunks arrive in order; out-of-order ones wait
        # in memory (bounded). Past the bound, or after a restart, the blob is
        # hashed from disk once complete. Chunks due next are queued under
        # the lock and hashed outside it, by one writer at a time: the others
        # carry on writing instead of waiting for each MiB to be hashed.
        self._hasher: hashlib._Hash | None = hashlib.sha256()
        self._next = 0
        self._waiting: dict[int, bytes] = {}
        self._waiting_bytes = 0
        self._due: deque[bytes] = deque()
        self._hashing = threading.Lock()
        self._data = os.open(directory / "data", os.O_RDWR | os.O_CREAT, 0o600)
        self._log = os.open(directory / "received", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if os.fstat(self._data).st_size != total_size:
            os.ftruncate(self._data, total_size)

    @property
    def complete(self) -> bool:
        return len(self.received) == self.total_chunks

    @property
    def ready(self) -> bool:
        """Every chunk is here and the digest to check them against is known."""
        return self.complete and self.digest is not None

    def adopt_digest(self, digest: str) -> None:
        """Learn the digest of a streamed upload (persisted for a restart)."""
        with self._lock:
            if self.digest == digest:
                return
            if self.digest is not None:
                raise ChunkConflictError(
                    f"upload {self.upload_id[:16]}… is of {self.digest[:12]}…, not {digest[:12]}…"
                )
            write_meta(self.directory, digest, self.total_size, self.total_chunks)
            self.digest = digest

    @property
    def done(self) -> bool:
        """Finalized or discarded: a chunk for it belongs to a fresh upload."""
        return self.finalized or self.discarded

    def _fits(self, index: int, offset: int, size: int) -> None:
        """Refuse a chunk that cannot tile the blob with the chunks seen so far."""
        total, count = self.total_size, self.total_chunks
        if offset + size > total:
            raise ChunkConflictError(f"chunk {index} ends past the blob's {total} bytes")
        last = index == count - 1
        if last and offset + size != total:
            raise ChunkConflictError(f"the last chunk ({index}) does not end the blob")
        if not last:
            implied: int | None = size
        elif index == 0:
            implied = None  # a single chunk: the whole blob, any chunk size
        elif offset % index:
            raise ChunkConflictError(f"chunk {index} starts at {offset}, off the chunk grid")
        else:
            implied = offset // index
        if implied is None:
            if offset != 0:
                raise ChunkConflictError("a single-chunk blob starts at 0")
            return
        if implied <= 0 or offset != index * implied or size > implied:
            raise ChunkConflictError(f"chunk {index} ({offset}+{size}) is off the chunk grid")
        if self.chunk_size is None:
            if chunk_count(total, implied) != count:
                raise ChunkConflictError(
                    f"{count} chunks of {implied} bytes cannot make {total} bytes"
                )
            self.chunk_size = implied
        elif implied != self.chunk_size:
            raise ChunkConflictError(
                f"chunk {index} implies chunks of {implied} bytes, not {self.chunk_size}"
            )

    def write(self, index: int, offset: int, raw: bytes) -> bool:
        """Store one chunk; False if it was already held (a duplicate)."""
        size = len(raw)
        with self._lock:
            if self.discarded:
                return False
            known = self.received.get(index)
            if known is not None or index in self._writing:
                if known is not None and known != (offset, size):
                    raise ChunkConflictError(f"chunk {index} arrived twice with other bounds")
                return False
            self._fits(index, offset, size)
            self._writing.add(index)
        try:
            os.pwrite(self._data, raw, offset)
            if self._writeback is not None and size:
                self._writeback(self._data, offset, size)
        except BaseException:
            with self._lock:
                self._done_writing(index)
            raise
        with self._lock:
            if self._done_writing(index):
                return False
            self.received[index] = (offset, size)
            os.write(self._log, f"{index} {offset} {size}\n".encode())
            self.touched = time.monotonic()
            self._hash_in_order(index, raw)
        self._hash_due()
        return True

    def _hash_in_order(self, index: int, raw: bytes) -> None:
        if self._hasher is None:
            return
        if index != self._next:
            if self._waiting_bytes + len(raw) > self._hash_window:
                self._hasher, self._waiting = None, {}
                self._due.clear()
                return
            self._waiting[index] = raw
            self._waiting_bytes += len(raw)
            return
        self._due.append(raw)
        self._next += 1
        while self._next in self._waiting:
            pending = self._waiting.pop(self._next)
            self._waiting_bytes -= len(pending)
            self._due.append(pending)
            self._next += 1

    def _hash_due(self, *, wait: bool = False) -> None:
        """Hash the queued chunks in order; with ``wait``, until none is left.

        Without it, a writer that finds another one hashing leaves the queue
        to it: that one looks again before it stops, so nothing is stranded.
        """
        while self._hashing.acquire(blocking=wait):
            try:
                while True:
                    with self._lock:
                        if not self._due:
                            break
                        block = self._due.popleft()
                        hasher = self._hasher
                    if hasher is not None:
                        hasher.update(block)
            finally:
                self._hashing.release()
            with self._lock:
                if not self._due:
                    return

    def load_log(self) -> int:
        """Merge chunks logged on disk (an earlier run, or a replica); how many were new."""
        path = self.directory / "received"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return 0
        added = 0
        with self._lock:
            for line in lines:
                try:
                    index, offset, size = (int(part) for part in line.split())
                except ValueError:
                    continue  # a line cut short by a crash: its chunk counts as missing
                if index in self.received or not 0 <= index < self.total_chunks:
                    continue
                try:
                    self._fits(index, offset, size)
                except ChunkConflictError:
                    continue
                self.received[index] = (offset, size)
                added += 1
            if added:
                # Bytes we did not see pass: hash from disk at the end.
                self._hasher, self._waiting, self._waiting_bytes = None, {}, 0
                self._due.clear()
        return added

    def finalize(self, blob_path: Path, *, fsync: bool, fingerprints: Path | None = None) -> None:
        """Verify the digest and move the blob into place; on mismatch, discard.

        With ``fingerprints``, the blob's fingerprint is recorded there too.
        """
        self._hash_due(wait=True)
        with self._lock:
            if self.finalized:
                return
            if not self.complete or self.digest is None:
                raise ChunkConflictError("the upload is not complete, or its digest not known")
            if self._hasher is not None and self._next == self.total_chunks and not self._due:
                digest = self._hasher.hexdigest()
            else:
                digest = self._hash_file()
            if digest != self.digest:
                self._discard()
                raise DigestMismatchError(
                    f"upload {self.upload_id[:16]}…: bytes hash to {digest[:12]}…, "
                    f"not {self.digest[:12]}…; discarded"
                )
            if fsync:
                os.fsync(self._data)
            print_ = fingerprint_fd(self._data, self.total_size)
            self.close()
            blob_path.parent.mkdir(parents=True, exist_ok=True)
            if not blob_path.exists():
                os.replace(self.directory / "data", blob_path)
                if fsync:
                    _fsync_dir(blob_path.parent)
            shutil.rmtree(self.directory, ignore_errors=True)
            self.finalized = True
        if fingerprints is not None:
            record_fingerprint(fingerprints, print_, digest)

    def _hash_file(self) -> str:
        hasher = hashlib.sha256()
        offset = 0
        while offset < self.total_size:
            block = os.pread(self._data, min(_READ_BLOCK, self.total_size - offset), offset)
            if not block:
                break
            hasher.update(block)
            offset += len(block)
        return hasher.hexdigest()

    def close(self) -> None:
        """Close the staging files (the staging stays for a later resume)."""
        for fd in (self._data, self._log):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._data = self._log = -1

    def discard(self) -> None:
        """Close and remove this upload's staging directory.

        A chunk being written meanwhile is dropped, and the files are closed
        once it is done (never under it: its descriptor could be reused).
        """
        with self._lock:
            self._discard()

    def _done_writing(self, index: int) -> bool:
        """(Under the lock) one write is over; True if the upload was discarded
        meanwhile — its files are closed once the last write is over."""
        self._writing.discard(index)
        if self.discarded and not self._writing:
            self.close()
        return self.discarded

    def _discard(self) -> None:
        self.discarded = True
        if not self._writing:
            self.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def write_meta(directory: Path, digest: str | None, total_size: int, total_chunks: int) -> None:
    meta = {"digest": digest, "total_size": total_size, "total_chunks": total_chunks}
    temporary = directory / "meta.json.tmp"
    temporary.write_text(json.dumps(meta))
    os.replace(temporary, directory / "meta.json")


def fingerprint_fd(fd: int, size: int) -> str:
    """:func:`boson_shared.transfer.chunks.fingerprint` of the ``size`` bytes in file ``fd``."""
    hasher = hashlib.sha256(size.to_bytes(8, "big"))
    hasher.update(os.pread(fd, min(FINGERPRINT_SPAN, size), 0))
    tail = max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN)
    if tail < size:
        hasher.update(os.pread(fd, size - tail, tail))
    return hasher.hexdigest()


def record_fingerprint(fingerprints: Path, print_: str, digest: str) -> None:
    """Note that the blob ``digest`` has fingerprint ``print_``.

    Not synced: a marker lost in a crash costs one upload sent in full, whose
    digest check then finds the blob already there.
    """
    path = fingerprints / print_[:2] / print_
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{digest}\n".encode())
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "START_WRITEBACK",
    "Upload",
    "WritebackStarter",
    "fingerprint_fd",
    "record_fingerprint",
    "write_meta",
]
