"""``boson run all`` hands each executor its share of the configured GPU devices."""

from __future__ import annotations

import pytest

from boson.cli import build_parser, main
from boson.commands.run import overrides, run_plan
from boson_services.executor.settings import ExecutorSettings


def executor_settings(argv: list[str]) -> dict[str, ExecutorSettings]:
    """Each executor child of ``boson <argv>``, as its own command line configures it."""
    parser = build_parser()
    out = {}
    for name, command in run_plan(parser.parse_args(argv)):
        if name.startswith("executor "):
            assert command[1:4] == ["-m", "boson", "run"]
            child = parser.parse_args(command[3:])
            values = {
                k: v for k, v in overrides(child).items() if k in ExecutorSettings.model_fields
            }
            out[name.removeprefix("executor ")] = ExecutorSettings(**values)
    return out


def test_the_devices_are_split_among_the_executors_in_order() -> None:
    devices = [f"GPU-{k}:A100:40960" for k in range(5)]
    argv = ["run", "all", "--node-id", "m", "--executors", "2"]
    for device in devices:
        argv += ["--gpu-device", device]
    children = executor_settings(argv)
    assert children["m-1"].gpu_devices == tuple(devices[:3])
    assert children["m-2"].gpu_devices == tuple(devices[3:])
    # Without devices none is passed: each executor discovers its own.
    plain = executor_settings(["run", "all", "--node-id", "m", "--executors", "2"])
    assert [s.gpu_devices for s in plain.values()] == [(), ()]


def test_fewer_devices_than_executors_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["run", "all", "--executors", "3", "--gpu-device", "0", "--gpu-device", "1"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "2 --gpu-device for 3 executors" in err
