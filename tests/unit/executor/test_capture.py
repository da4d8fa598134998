"""Per-task output capture: bounded to its tail, secrets removed, progress checked."""

from __future__ import annotations

import asyncio
import io
import math

import pytest
from rich.console import Console
from rich.file_proxy import FileProxy

from boson_services.executor.capture import REDACTED, TailBuffer, _Router, redact, secrets_of
from boson_services.executor.steering import ProgressCoalescer
from boson_shared.contract.messages import MAX_LOG_BYTES, TaskProgress, TaskSubmitted
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


def test_a_rich_display_finds_the_terminal_behind_the_routers() -> None:
    # Without it a rich progress display (boson submit --wait, in-process)
    # writes to its own redirect through the router, and hangs.
    terminal = io.StringIO()
    proxy = FileProxy(Console(file=terminal), terminal)
    router = _Router(proxy)  # type: ignore[arg-type]
    assert router.rich_proxied_file is terminal
    router.write("plain text goes on\n")


async def test_a_late_timer_never_sends_an_older_report_after_a_newer_one() -> None:
    sent: list[float] = []
    now = [0.0]

    async def publish(progress: TaskProgress) -> None:
        sent.append(progress.fraction)

    coalescer = ProgressCoalescer(publish, node_id="n1", clock=lambda: now[0])
    task = TaskSubmitted(task_id="t", handler="h", reply_to="c")
    coalescer.report(task, 0.1, "")  # sent at once
    now[0] = 0.2
    coalescer.report(task, 0.2, "")  # held back, its timer due at 0.5
    now[0] = 0.9  # the loop was busy: the timer has not fired yet
    coalescer.report(task, 0.3, "")  # the interval has passed: sent at once
    await asyncio.sleep(0.6)  # the old timer's time comes and goes
    coalescer.finish("t")
    await coalescer.close()
    assert sent == [0.1, 0.3]


async def test_close_drops_a_report_whose_publish_never_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def publish(progress: TaskProgress) -> None:
        await asyncio.Event().wait()  # a broker that never confirms

    coalescer = ProgressCoalescer(publish, node_id="n1")
    coalescer.report(TaskSubmitted(task_id="t", handler="h", reply_to="c"), 0.5, "")
    async with asyncio.timeout(5):
        await coalescer.close(timeout=0.2)
    assert "1 progress reports not published within 0.2s of the stop; dropped" in caplog.text
