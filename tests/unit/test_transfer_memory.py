"""The transfer service keeps freed chunk buffers for reuse (glibc mallopt)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from boson_services.transfer import app as app_module
from boson_services.transfer.memory import (
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    MMAP_THRESHOLD_BYTES,
    retain_freed_memory,
)
from boson_services.transfer.settings import TransferSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring


class FakeMallopt:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def __call__(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.answer


def test_both_thresholds_are_set() -> None:
    mallopt = FakeMallopt()
    assert retain_freed_memory(64 * 1024 * 1024, mallopt=mallopt)
    assert mallopt.calls == [
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, 64 * 1024 * 1024),
    ]


def test_zero_leaves_malloc_alone() -> None:
    mallopt = FakeMallopt()
    assert not retain_freed_memory(0, mallopt=mallopt)
    assert mallopt.calls == []


def test_a_refusal_is_reported_not_raised() -> None:
    assert not retain_freed_memory(1024, mallopt=FakeMallopt(answer=0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_glibc_takes_the_settings() -> None:
    # The test process: harmless, it only keeps more freed memory around.
    assert retain_freed_memory(64 * 1024 * 1024)


def test_the_process_entry_point_applies_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[int] = []
    monkeypatch.setattr(app_module, "retain_freed_memory", applied.append)
    settings = TransferSettings(blob_dir=tmp_path, malloc_retain_bytes=12345)
    codec = EnvelopeCodec(Keyring.ephemeral())
    service = app_module.create(settings, MemoryTransport(MemoryBroker()), codec)
    assert isinstance(service, app_module.TransferService)
    assert applied == [12345]
