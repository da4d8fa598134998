"""The instruction-counting benchmark: its counted loop runs, and bad input is one clear line."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import dispatcher_instructions


def test_the_counted_loop_runs_both_sides() -> None:
    # What valgrind counts in each process: the benchmark's loop, with and without tenants.
    dispatcher_instructions.run_once(2, 20, None)
    dispatcher_instructions.run_once(2, 20, 2)


def test_fewer_long_tasks_than_short_ones_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    assert dispatcher_instructions.main(["--short", "3000", "--long", "1000"]) == 2
    assert capsys.readouterr().err.strip() == "--long must be more tasks than --short"
