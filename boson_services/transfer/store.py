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

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from boson_services.transfer.upload import (
    Upload,
    fingerprint_fd,
    record_fingerprint,
    write_meta,
)
from boson_shared.errors import ConfigError
from boson_shared.transfer.errors import (
    BlobTooLargeError,
    ChunkConflictError,
    ChunkRejectedError,
)

logger = logging.getLogger(__name__)


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
            print_ = fingerprint_fd(fd, os.fstat(fd).st_size)
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
            write_meta(directory, digest, total_size, total_chunks)
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


__all__ = ["BlobStore"]
