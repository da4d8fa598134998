"""The CLI against a real broker where nothing (or too little) is running."""

from __future__ import annotations

import time

import pytest

from boson.cli import main


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_status_with_no_monitor_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
    amqp_url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOSON_NAMESPACE", namespace)
    started = time.monotonic()
    status = main(["status", "--broker", amqp_url, "--timeout", "1"])
    captured = capsys.readouterr()
    assert status == 2
    assert time.monotonic() - started < 20
    assert captured.err.strip() == (
        f"boson: NoAnswerError: no cluster snapshot within 1 s on namespace {namespace!r}: "
        "is a monitor running (`boson run monitor`)?"
    )
