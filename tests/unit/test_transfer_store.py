"""The blob store: atomic, content-addressed, resumable, never a wrong blob."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import cast

import pytest

from boson_services.transfer import upload as upload_module
from boson_services.transfer.store import BlobStore
from boson_services.transfer.upload import Upload
from boson_shared.errors import ConfigError
from boson_shared.transfer.chunks import MIB, fingerprint, sha256_hex, spans
from boson_shared.transfer.errors import (
    BlobTooLargeError,
    ChunkConflictError,
    ChunkRejectedError,
    DigestMismatchError,
)

CHUNK = 1024
BLOB = os.urandom(5 * CHUNK + 100)
DIGEST = sha256_hex(BLOB)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    store = BlobStore(tmp_path / "store")
    store.open()
    return store


def start(store: BlobStore, blob: bytes = BLOB, digest: str = DIGEST) -> Upload:
    upload = store.upload(f"{digest}-{CHUNK}", digest, len(blob), len(spans(len(blob), CHUNK)))
    assert upload is not None
    return upload


def write(upload: Upload, blob: bytes, indices: list[int]) -> None:
    layout = spans(len(blob), CHUNK)
    for index in indices:
        span = layout[index]
        upload.write(index, span.offset, blob[span.offset : span.offset + span.size])


def test_in_order_chunks_make_the_blob(store: BlobStore) -> None:
    upload = start(store)
    write(upload, BLOB, list(range(6)))
    assert upload.complete
    upload.finalize(store.blob_path(DIGEST), fsync=True)
    assert store.blob_path(DIGEST).read_bytes() == BLOB
    assert store.read(DIGEST, CHUNK, 10) == BLOB[CHUNK : CHUNK + 10]
    assert store.staged() == 0


def test_a_stored_blob_leaves_its_fingerprint(store: BlobStore) -> None:
    assert not store.has_fingerprint(fingerprint(BLOB))
    upload = start(store)
    write(upload, BLOB, list(range(6)))
    upload.finalize(store.blob_path(DIGEST), fsync=False, fingerprints=store.fingerprints)
    assert store.has_fingerprint(fingerprint(BLOB))
    assert not store.has_fingerprint(fingerprint(BLOB + b"x"))


@pytest.mark.parametrize(
    "size", [0, 1, MIB - 1, MIB, MIB + 1, 2 * MIB - 1, 2 * MIB, 2 * MIB + 5, 3 * MIB + 7]
)
def test_the_store_fingerprints_a_blob_as_the_sender_does(store: BlobStore, size: int) -> None:
    blob = os.urandom(size)
    digest = sha256_hex(blob)
    upload = store.upload("u", digest, size, len(spans(size, MIB)))
    assert upload is not None
    for span in spans(size, MIB):
        upload.write(span.index, span.offset, blob[span.offset : span.offset + span.size])
    upload.finalize(store.blob_path(digest), fsync=False, fingerprints=store.fingerprints)
    assert store.has_fingerprint(fingerprint(blob))


def test_a_streamed_upload_learns_its_digest_late_even_from_a_reordered_last_chunk(
    tmp_path: Path,
) -> None:
    store = BlobStore(tmp_path / "store")
    store.open()
    upload = store.upload("streamed", None, len(BLOB), 6)
    assert upload is not None
    assert upload.digest is None
    # The last chunk (which carries the digest) comes first.
    adopted = store.upload("streamed", DIGEST, len(BLOB), 6)
    assert adopted is upload
    write(upload, BLOB, [5])
    write(upload, BLOB, [3, 4, 2])
    # A restart keeps the digest it learnt.
    store.close()
    again = BlobStore(tmp_path / "store")
    resumed = again.upload("streamed", None)
    assert resumed is not None
    assert resumed.digest == DIGEST
    assert resumed.received.keys() == {2, 3, 4, 5}
    write(resumed, BLOB, [0, 1])
    assert resumed.ready
    resumed.finalize(again.blob_path(DIGEST), fsync=False)
    assert again.blob_path(DIGEST).read_bytes() == BLOB


def test_an_upload_is_not_finalized_before_its_digest_is_known(store: BlobStore) -> None:
    upload = store.upload("streamed", None, len(BLOB), 6)
    assert upload is not None
    write(upload, BLOB, list(range(6)))
    assert upload.complete
    assert not upload.ready
    with pytest.raises(ChunkConflictError):
        upload.finalize(store.blob_path(DIGEST), fsync=False)
    assert not store.has(DIGEST)


def test_a_staging_of_other_content_under_the_same_id_starts_over(store: BlobStore) -> None:
    other = os.urandom(len(BLOB))
    first = store.upload("shared-id", sha256_hex(other), len(other), 6)
    assert first is not None
    write(first, other, [0, 1, 2])
    second = store.upload("shared-id", DIGEST, len(BLOB), 6)
    assert second is not None
    assert second is not first
    assert first.discarded
    assert second.digest == DIGEST
    assert second.received == {}
    write(second, BLOB, list(range(6)))
    second.finalize(store.blob_path(DIGEST), fsync=False)
    assert store.blob_path(DIGEST).read_bytes() == BLOB


def test_a_chunk_written_while_its_upload_is_discarded_is_dropped(store: BlobStore) -> None:
    upload = start(store)
    write(upload, BLOB, [0])
    upload.discard()
    assert not upload.write(1, CHUNK, BLOB[CHUNK : 2 * CHUNK])
    assert 1 not in upload.received


class _SlowHasher:
    """SHA-256 whose first update waits until released."""

    def __init__(self) -> None:
        self.inner = hashlib.sha256()
        self.hashing = threading.Event()
        self.release = threading.Event()

    def update(self, data: bytes) -> None:
        self.hashing.set()
        self.release.wait(10)
        self.inner.update(data)

    def hexdigest(self) -> str:
        return self.inner.hexdigest()


def test_a_writer_does_not_wait_for_another_ones_hashing(store: BlobStore) -> None:
    upload = start(store)
    slow = _SlowHasher()
    upload._hasher = cast("hashlib._Hash", slow)
    first = threading.Thread(target=write, args=(upload, BLOB, [0]))
    first.start()
    assert slow.hashing.wait(10)
    began = time.monotonic()
    write(upload, BLOB, [1, 2, 3])  # due for hashing too: queued, not waited for
    assert time.monotonic() - began < 5
    assert set(upload.received) == {0, 1, 2, 3}
    slow.release.set()
    first.join(10)
    write(upload, BLOB, [4, 5])
    upload.finalize(store.blob_path(DIGEST), fsync=False)
    assert store.blob_path(DIGEST).read_bytes() == BLOB


def test_a_syncing_store_starts_each_chunks_writeback_as_it_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(
        upload_module, "START_WRITEBACK", lambda fd, offset, size: started.append((offset, size))
    )
    for fsync in (True, False):
        started.clear()
        store = BlobStore(tmp_path / f"store-{fsync}", fsync=fsync)
        store.open()
        upload = start(store)
        write(upload, BLOB, [2, 0, 1, 3, 4, 5])
        upload.finalize(store.blob_path(DIGEST), fsync=fsync)
        assert store.blob_path(DIGEST).read_bytes() == BLOB
        layout = spans(len(BLOB), CHUNK)
        expected = [(layout[i].offset, layout[i].size) for i in (2, 0, 1, 3, 4, 5)]
        assert started == (expected if fsync else [])


def test_the_platforms_writeback_call_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10_000)
    if upload_module.START_WRITEBACK is None:
        pytest.skip("no sync_file_range on this platform")
    fd = os.open(path, os.O_RDWR)
    try:
        upload_module.START_WRITEBACK(fd, 0, 10_000)
        upload_module.START_WRITEBACK(-1, 0, 10)  # a bad descriptor is ignored, not raised
    finally:
        os.close(fd)
    assert path.read_bytes() == b"x" * 10_000


def test_reordered_chunks_make_the_same_blob(store: BlobStore) -> None:
    upload = start(store)
    write(upload, BLOB, [5, 3, 0, 4, 1, 2])
    upload.finalize(store.blob_path(DIGEST), fsync=False)
    assert store.blob_path(DIGEST).read_bytes() == BLOB


def test_out_of_order_past_the_hash_window_hashes_from_disk(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, hash_window_bytes=CHUNK)
    store.open()
    upload = start(store)
    write(upload, BLOB, [5, 4, 3, 2, 1, 0])
    upload.finalize(store.blob_path(DIGEST), fsync=False)
    assert store.has(DIGEST)


def test_a_duplicate_is_detected_and_ignored(store: BlobStore) -> None:
    upload = start(store)
    assert upload.write(0, 0, BLOB[:CHUNK]) is True
    assert upload.write(0, 0, BLOB[:CHUNK]) is False
    assert len(upload.received) == 1


def test_a_duplicate_with_other_bounds_is_a_conflict(store: BlobStore) -> None:
    upload = start(store)
    upload.write(1, CHUNK, BLOB[CHUNK : 2 * CHUNK])
    with pytest.raises(ChunkConflictError, match="twice"):
        upload.write(1, CHUNK, BLOB[CHUNK : CHUNK + 10])


@pytest.mark.parametrize(
    ("index", "offset", "size", "match"),
    [
        (1, 1000, CHUNK, "grid"),
        (5, 5 * CHUNK, 50, "does not end"),
        (2, 5 * CHUNK, CHUNK, "past the blob"),
        (0, 0, 2000, "cannot make"),
    ],
)
def test_chunks_off_the_layout_are_conflicts(
    store: BlobStore, index: int, offset: int, size: int, match: str
) -> None:
    upload = start(store)
    with pytest.raises(ChunkConflictError, match=match):
        upload.write(index, offset, b"x" * size)


def test_chunks_disagreeing_on_chunk_size_are_conflicts(store: BlobStore) -> None:
    upload = start(store)
    upload.write(0, 0, BLOB[:CHUNK])
    with pytest.raises(ChunkConflictError):
        upload.write(1, 512, BLOB[512:1024])


def test_corrupt_bytes_never_become_a_blob(store: BlobStore) -> None:
    upload = start(store)
    corrupt = bytearray(BLOB)
    corrupt[2 * CHUNK + 7] ^= 0xFF
    write(upload, bytes(corrupt), list(range(6)))
    with pytest.raises(DigestMismatchError, match="discarded"):
        upload.finalize(store.blob_path(DIGEST), fsync=True)
    assert not store.has(DIGEST)
    assert store.staged() == 0


def test_a_restarted_store_resumes_from_the_log(tmp_path: Path) -> None:
    first = BlobStore(tmp_path)
    first.open()
    write(start(first), BLOB, [0, 1, 2])
    first.close()
    second = BlobStore(tmp_path)
    second.open()
    resumed = second.upload(f"{DIGEST}-{CHUNK}", DIGEST)
    assert resumed is not None
    assert sorted(resumed.received) == [0, 1, 2]
    write(resumed, BLOB, [3, 4, 5])
    resumed.finalize(second.blob_path(DIGEST), fsync=True)
    assert second.blob_path(DIGEST).read_bytes() == BLOB


def test_an_unknown_upload_is_none_without_sizes(store: BlobStore) -> None:
    assert store.upload("nothing-here", DIGEST) is None


def test_an_upload_restarted_with_another_layout_is_a_conflict(store: BlobStore) -> None:
    start(store)
    with pytest.raises(ChunkConflictError, match="another layout"):
        store.upload(f"{DIGEST}-{CHUNK}", DIGEST, len(BLOB) + 1, 6)


def test_an_upload_id_that_names_a_parent_is_refused(store: BlobStore) -> None:
    with pytest.raises(ChunkRejectedError):
        store.upload("..", DIGEST, 10, 1)


def test_a_blob_over_the_limit_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_blob_bytes=100)
    store.open()
    with pytest.raises(BlobTooLargeError):
        store.upload("big", DIGEST, 101, 1)


def test_stale_partial_uploads_are_collected(store: BlobStore) -> None:
    upload = start(store)
    write(upload, BLOB, [0])
    assert store.collect_garbage(max_age_s=3600) == 0
    upload.touched = time.monotonic() - 7200
    assert store.collect_garbage(max_age_s=3600) == 1
    assert store.staged() == 0


def test_stale_staging_left_by_another_run_is_collected(tmp_path: Path) -> None:
    first = BlobStore(tmp_path)
    first.open()
    write(start(first), BLOB, [0])
    first.close()
    directory = next((tmp_path / "staging").iterdir())
    old = time.time() - 7200
    for path in (directory, *directory.iterdir()):
        os.utime(path, (old, old))
    second = BlobStore(tmp_path)
    second.open()
    assert second.collect_garbage(max_age_s=3600) == 1


def test_an_unwritable_blob_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ConfigError, match="not writable"):
        BlobStore(blocker / "store").open()
