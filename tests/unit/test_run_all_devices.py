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


def test_a_gpu_count_is_split_among_several_executors_by_index() -> None:
    """``--gpu 4`` on two executors: devices 0 and 1 to the first, 2 and 3 to the second."""
    children = executor_settings(["run", "all", "--node-id", "m", "--executors", "2", "--gpu", "4"])
    assert children["m-1"].gpu_devices == ("0", "1")
    assert children["m-2"].gpu_devices == ("2", "3")
    # The count is not passed on as well: each executor's GPUs are its devices alone.
    assert {s.gpu for s in children.values()} == {0.0}
    three = executor_settings(["run", "all", "--node-id", "m", "--executors", "3", "--gpu", "5"])
    assert [s.gpu_devices for s in three.values()] == [("0", "1"), ("2", "3"), ("4",)]


def test_one_executor_takes_the_gpu_count_as_it_is() -> None:
    children = executor_settings(["run", "all", "--node-id", "m", "--executors", "1", "--gpu", "2"])
    assert children["m-1"].gpu == 2.0
    assert children["m-1"].gpu_devices == ()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--executors", "3", "--gpu", "2"], "--gpu 2 for 3 executors"),
        (["--executors", "2", "--gpu", "1.5"], "--gpu 1.5 for 2 executors"),
    ],
)
def test_a_gpu_count_that_cannot_be_split_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main(["run", "all", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert says in err
