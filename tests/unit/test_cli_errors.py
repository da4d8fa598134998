"""What a user mistyping a command sees: one line on stderr, a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from boson.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    status = main(argv)
    captured = capsys.readouterr()
    assert status != 0
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_input_naming_a_missing_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOSON_BROKER_URL", raising=False)
    missing = tmp_path / "nope.csv"
    line = _one_line_error(capsys, ["submit", "stats", "--input", str(missing), "--wait"])
    assert line == f"boson: ConfigError: --input {missing}: no such file"


def test_input_naming_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOSON_BROKER_URL", raising=False)
    line = _one_line_error(capsys, ["submit", "stats", "--input", str(tmp_path), "--wait"])
    assert line == f"boson: ConfigError: --input {tmp_path} is a directory; name a file"


def test_a_wait_that_runs_out_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from boson.commands import demo

    async def never_ready(*args: object) -> dict[str, object]:
        raise TimeoutError("demo: timed out waiting until the nodes are up")

    monkeypatch.setattr(demo, "demo", never_ready)
    line = _one_line_error(capsys, ["demo"])
    assert line == "boson: timed out: demo: timed out waiting until the nodes are up"
