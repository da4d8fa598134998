"""The CLI against a real broker where nothing (or too little) is running."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from boson.cli import main
from tests.conftest import AmqpBroker


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


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_submit_without_wait_leaves_no_reply_queue(
    capsys: pytest.CaptureFixture[str],
    amqp_broker: AmqpBroker,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reply queue never expires, so the one-shot client that will not read it removes it.

    The task waits in the submit queue (no scheduler runs); its result would
    be read from the task record (``boson result ID``).
    """
    if amqp_broker.rabbitmqctl is None:
        pytest.skip("needs rabbitmqctl where the broker is")
    monkeypatch.setenv("BOSON_NAMESPACE", namespace)
    status = await asyncio.to_thread(main, ["submit", "noop", "--broker", amqp_broker.url])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert len(captured.out.split()) == 1  # the task id
    listing = await amqp_broker.rabbitmqctl("list_queues", "name", "--formatter", "json", "-q")
    mine = sorted(row["name"] for row in json.loads(listing) if row["name"].startswith(namespace))
    assert [name for name in mine if ".client" in name] == [], mine
    assert f"{namespace}.tasks.submit" in mine
