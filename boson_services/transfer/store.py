"""The blob store: a directory, content-addressed by SHA-256, written atomically.

Layout under the root::

    blobs/<aa>/<sha256>          complete blobs, named by their digest
    fingerprints/<aa>/<fp>       one per stored blob's fingerprint: the digests that have it
    staging/<upload id>/meta.json    what the upload is (digest once known, sizes, counts)
    staging/<upload id>/data         the blob being assembled (pwrite at offsets)
    staging/<upload id>/received     one line per chunk written: index offset size

A streamed upload's digest arrives with its last chunk; until then the staging
has none, and the blob is hashed as it arrives all the same. The fingerprints
let an uploader ask "might you hold this?" before it has hashed the blob
(``boson_shared.transfer.chunks.fingerprint``): only a known one costs it a full
hash and a second question.

A blob enters ``blobs/`` only by ``os.replace`` of its staging file after its
SHA-256 matched and the file was synced, so the store never holds a blob whose
digest does not match. When syncing, each chunk's range is handed to the
kernel's writeback as soon as it is written (Linux ``sync_file_range``), so
that final sync waits for the last chunks only, not the whole blob.

The ``received`` log lets a restarted service (or a replica on the same
volume) resume an upload; the final digest check is what
makes that safe even if the log outlived data lost in a crash.

Everything here is blocking file I/O: the service calls it from worker threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from boson_shared.errors import ConfigError
from boson_shared.transfer.chunks import FINGERPRINT_SPAN, chunk_count
from boson_shared.transfer.errors import (
    BlobTooLargeError,
    ChunkConflictError,
    ChunkRejectedError,
    DigestMismatchError,
)

logger = logging.getLogger(__name__)

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
            _write_meta(self.directory, digest, self.total_size, self.total_chunks)
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
            print_ = _fingerprint_fd(self._data, self.total_size)
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


def _write_meta(directory: Path, digest: str | None, total_size: int, total_chunks: int) -> None:
    meta = {"digest": digest, "total_size": total_size, "total_chunks": total_chunks}
    temporary = directory / "meta.json.tmp"
    temporary.write_text(json.dumps(meta))
    os.replace(temporary, directory / "meta.json")


def _fingerprint_fd(fd: int, size: int) -> str:
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


class BlobStore:
    """Complete blobs plus the staging area of partial uploads."""

    def __init__(
        self,
        root: Path,
        *,
        max_blob_bytes: int = 1 << 40,
        hash_window_bytes: int = 64 * 1024 * 1024,
        fsync: bool = True,
    ) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.fingerprints = root / "fingerprints"
        self.staging = root / "staging"
        self.max_blob_bytes = max_blob_bytes
        self.fsync = fsync
        self._hash_window = hash_window_bytes
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        """Create the directories; :class:`ConfigError` if they cannot be written."""
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.fingerprints.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir(parents=True, exist_ok=True)
            probe = self.staging / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"blob directory {self.root} is not writable: {e}") from e

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def has_fingerprint(self, print_: str) -> bool:
        """Whether a stored blob has this fingerprint (it may still be other content)."""
        return (self.fingerprints / print_[:2] / print_).is_file()

    def settle(self, upload_id: str, digest: str) -> None:
        """The blob ``digest`` turned out stored already: drop a staging of it
        under ``upload_id`` and note the blob's fingerprint (a blob stored
        before fingerprints existed has none)."""
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.digest in {None, digest}:
                upload.discard()
                del self._uploads[upload_id]
        path = self.blob_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            print_ = _fingerprint_fd(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        if not self.has_fingerprint(print_):
            record_fingerprint(self.fingerprints, print_, digest)

    def size(self, digest: str) -> int:
        return self.blob_path(digest).stat().st_size

    def read(self, digest: str, offset: int, size: int) -> bytes:
        with self.blob_path(digest).open("rb") as blob:
            blob.seek(offset)
            return blob.read(size)

    def upload(
        self,
        upload_id: str,
        digest: str | None,
        total_size: int | None = None,
        total_chunks: int | None = None,
    ) -> Upload | None:
        """The staging of ``upload_id``: held, on disk, or (given sizes) new; else None.

        Given a ``digest``, a staging without one adopts it; a staging of
        another digest (other content with the same fingerprint) is discarded
        and this upload starts over in its place.
        """
        if upload_id in {".", ".."}:
            # The id names a directory: never let it name the staging area's parent.
            raise ChunkRejectedError(f"{upload_id!r} is not a usable upload id")
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.done:
                upload = None
            if upload is None:
                upload = self._load_or_create(upload_id, digest, total_size, total_chunks)
                if upload is None:
                    return None
                self._uploads[upload_id] = upload
            if total_size is not None and (upload.total_size, upload.total_chunks) != (
                total_size,
                total_chunks,
            ):
                raise ChunkConflictError(
                    f"upload {upload_id[:16]}… was started with another layout"
                )
            if digest is None or upload.digest == digest:
                return upload
            if upload.digest is None:
                upload.adopt_digest(digest)
                return upload
            logger.warning(
                "upload %s: staged for %s…, now %s…; starting over",
                upload_id[:16],
                upload.digest[:12],
                digest[:12],
            )
            upload.discard()
            del self._uploads[upload_id]
            upload = self._load_or_create(upload_id, digest, total_size, total_chunks)
            if upload is not None:
                self._uploads[upload_id] = upload
            return upload

    def _load_or_create(
        self, upload_id: str, digest: str | None, total_size: int | None, total_chunks: int | None
    ) -> Upload | None:
        directory = self.staging / upload_id
        meta_path = directory / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
            stored = meta["digest"]
            upload = Upload(
                directory,
                None if stored is None else str(stored),
                int(meta["total_size"]),
                int(meta["total_chunks"]),
                self._hash_window,
                write_behind=self.fsync,
            )
        except FileNotFoundError:
            if total_size is None or total_chunks is None:
                return None
            if total_size > self.max_blob_bytes:
                raise BlobTooLargeError(
                    f"an upload of {total_size} bytes exceeds the limit of {self.max_blob_bytes}"
                ) from None
            directory.mkdir(parents=True, exist_ok=True)
            _write_meta(directory, digest, total_size, total_chunks)
            return Upload(
                directory,
                digest,
                total_size,
                total_chunks,
                self._hash_window,
                write_behind=self.fsync,
            )
        except (ValueError, KeyError, TypeError) as e:
            # Unreadable staging (a crash mid-write): start this upload over.
            logger.warning("staging of %s unreadable (%s); starting over", upload_id[:16], e)
            shutil.rmtree(directory, ignore_errors=True)
            return self._load_or_create(upload_id, digest, total_size, total_chunks)
        upload.load_log()
        return upload

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)

    def collect_garbage(self, max_age_s: float) -> int:
        """Remove partial uploads untouched for ``max_age_s``; how many went."""
        removed = 0
        now_wall, now_mono = time.time(), time.monotonic()
        with self._lock:
            for upload_id, upload in list(self._uploads.items()):
                if now_mono - upload.touched > max_age_s:
                    upload.discard()
                    del self._uploads[upload_id]
                    removed += 1
            held = set(self._uploads)
        for directory in self.staging.iterdir() if self.staging.is_dir() else ():
            if directory.name in held or not directory.is_dir():
                continue
            try:
                age = now_wall - max(p.stat().st_mtime for p in (directory, *directory.iterdir()))
            except (OSError, ValueError):
                continue
            if age > max_age_s:
                shutil.rmtree(directory, ignore_errors=True)
                removed += 1
        return removed

    def delete_unreferenced(self, referenced: frozenset[str], older_than: float) -> int:
        """Delete stored blobs not in ``referenced`` and last written before
        ``older_than`` (epoch seconds); how many went.

        The task record says which blobs its unexpired tasks refer to; the
        age bound spares a blob uploaded for a task the record has not seen yet.
        """
        removed = 0
        for shard in self.blobs.iterdir() if self.blobs.is_dir() else ():
            for path in shard.iterdir() if shard.is_dir() else ():
                if path.name in referenced:
                    continue
                try:
                    if path.stat().st_mtime >= older_than:
                        continue
                    path.unlink()
                except OSError:
                    continue  # gone already, or another replica has it open
                removed += 1
        return removed

    def staged(self) -> int:
        """Partial uploads in the staging area."""
        return sum(1 for p in self.staging.iterdir() if p.is_dir()) if self.staging.is_dir() else 0

    def close(self) -> None:
        with self._lock:
            for upload in self._uploads.values():
                upload.close()
            self._uploads.clear()


__all__ = ["START_WRITEBACK", "BlobStore", "Upload", "WritebackStarter", "record_fingerprint"]
