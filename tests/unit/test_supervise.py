"""``boson run all``'s supervisor: restart with back-off, give up on a crash loop."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading

import pytest

from boson.commands.run import local_node_prefix
from boson.commands.supervise import RestartPolicy, Supervisor, describe_exit


def test_back_off_doubles_from_one_second_to_thirty() -> None:
    policy = RestartPolicy()
    assert [policy.delay_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_exit_codes_are_described_in_words() -> None:
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with 3"


@pytest.mark.timeout(30)
def test_a_crash_loop_stops_everything_with_a_clear_message_and_the_others_drain() -> None:
    out = io.StringIO()
    crasher = [sys.executable, "-c", "import sys; sys.exit(3)"]
    steady = [sys.executable, "-c", "import time; time.sleep(60)"]
    policy = RestartPolicy(first_delay_s=0.05, max_delay_s=0.1, crash_limit=3, window_s=60)
    supervisor = Supervisor([("crasher", crasher), ("steady", steady)], policy=policy, out=out)
    assert supervisor.run() == 1
    lines = out.getvalue().splitlines()
    assert lines.count("boson run all: crasher exited with 3; restarting it in 0.05 s") == 1
    assert lines.count("boson run all: restarting crasher") == 2
    assert lines[-1] == (
        "boson run all: crasher exited with 3; it crashed 3 times within 60 s, so everything stops"
    )
    steady_process = supervisor.children[1].process
    assert steady_process is not None
    assert steady_process.returncode is not None


def test_run_all_names_its_executors_after_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "gpu box#7.example.org")
    assert local_node_prefix() == "gpu-box-7"
    monkeypatch.setattr(socket, "gethostname", lambda: "...")
    assert local_node_prefix() == "local"


class OutlivesSigkill(subprocess.Popen[bytes]):
    """A child that ignores SIGTERM and SIGKILL alike, as one stuck in the
    kernel (a hung driver or mount) does: ``kill`` is a no-op, and ``wait``
    without a timeout blocks until the test releases it."""

    released = threading.Event()

    def kill(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            self.released.wait()
            return super().wait(timeout=10)
        raise subprocess.TimeoutExpired(self.args, timeout)


@pytest.mark.timeout(30)
def test_a_child_that_outlives_sigkill_is_left_behind_and_named() -> None:
    out = io.StringIO()
    supervisor = Supervisor([("stuck", [])], out=out)
    process = OutlivesSigkill([sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.children[0].process = process
    reaping = threading.Thread(target=supervisor._reap, daemon=True)
    try:
        reaping.start()
        reaping.join(timeout=10)
        assert not reaping.is_alive(), "the supervisor waited on a child SIGKILL did not end"
        assert out.getvalue().splitlines() == [
            "boson run all: stuck did not drain within 60 s; killing it",
            f"boson run all: stuck (pid {process.pid}) did not end within 5 s of SIGKILL; "
            "leaving it",
        ]
    finally:
        OutlivesSigkill.released.set()
        subprocess.Popen.kill(process)
        reaping.join(timeout=10)
        subprocess.Popen.wait(process, timeout=10)
