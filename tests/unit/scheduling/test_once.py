"""Work done once per process: a failure leaves it undone, concurrent callers wait."""

from __future__ import annotations

import threading
import time

import pytest

from boson_shared.scheduling.once import Once


def test_work_that_fails_is_not_done_and_runs_again() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("the first try fails")

    once = Once(work)
    with pytest.raises(RuntimeError):
        once()
    done_after_failure = once.done
    once()
    once()
    assert (done_after_failure, once.done) == (False, True)
    assert calls == [0, 1]


def test_a_second_caller_waits_for_the_first_ones_work() -> None:
    started = threading.Event()
    finished: list[str] = []

    def work() -> None:
        started.set()
        time.sleep(0.2)
        finished.append("work")

    once = Once(work)
    first = threading.Thread(target=once)
    first.start()
    assert started.wait(5)
    once()  # returns only once the first caller's work has
    finished.append("second caller")
    first.join(5)
    assert finished == ["work", "second caller"]
