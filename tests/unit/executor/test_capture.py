"""Per-task output capture: bounded to its tail, secrets removed, progress checked."""

from __future__ import annotations

import math

import pytest

from boson_services.executor.capture import REDACTED, TailBuffer, redact, secrets_of
from boson_shared.contract.messages import MAX_LOG_BYTES
from boson_shared.task_control import TaskControl


def test_the_buffer_keeps_the_last_64_kib() -> None:
    buffer = TailBuffer()
    assert buffer.text() is None
    for line in range(20_000):
        buffer.write(f"line {line:06d}\n")
    text = buffer.text()
    assert text is not None
    assert len(text.encode()) <= MAX_LOG_BYTES
    assert text.endswith("line 019999\n")
    assert "line 000000" not in text
    assert buffer.dropped


def test_one_huge_write_is_cut_to_its_tail() -> None:
    buffer = TailBuffer(limit=10)
    buffer.write("abcdefghijklmnopqrstuvwxyz")
    assert buffer.text() == "qrstuvwxyz"


def test_secrets_are_removed_whole_and_by_part() -> None:
    keys = "k1:" + "Q" * 43 + "=,k2:" + "R" * 43 + "="
    url = "amqp://boson:s3cret-pass@10.0.0.1:5672/"
    secrets = secrets_of([keys, url, None])
    text = f"keys {keys} one {'R' * 43}= url {url} pw s3cret-pass BOSON_KEYS=whatever"
    cleaned = redact(text, secrets)
    assert cleaned is not None
    for leaked in ("Q" * 43, "R" * 43, "s3cret-pass", "whatever"):
        assert leaked not in cleaned
    assert REDACTED in cleaned
    assert redact(None, secrets) is None


def test_progress_is_clamped_and_must_be_a_number() -> None:
    seen: list[tuple[float, str]] = []
    control = TaskControl(lambda fraction, message: seen.append((fraction, message)))
    control.progress(1.5, "x" * 1000)
    control.progress(-1)
    assert seen[0][0] == 1.0
    assert len(seen[0][1]) == 500
    assert seen[1] == (0.0, "")
    with pytest.raises(ValueError, match="finite"):
        control.progress(math.nan)
    assert not control.wait_cancelled(0)
    control.cancel()
    assert control.cancelled
    assert control.wait_cancelled(0)
