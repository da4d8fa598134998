"""A test run cut short by SIGTERM leaves no service process behind.

Found when a killed run's broker-restart test left its five services
consuming from the broker for the next forty minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.cluster import ROOT

INNER_TEST = """
import os
import time
from pathlib import Path

import pytest


@pytest.mark.broker
def test_starts_a_service_and_hangs(cluster) -> None:
    service = cluster.start("monitor")
    Path(os.environ["PID_FILE"]).write_text(str(service.process.pid))
    time.sleep(120)
"""


@pytest.mark.broker
@pytest.mark.timeout(90)
def test_sigterm_to_the_test_run_stops_its_services(amqp_url: str, tmp_path: Path) -> None:
    # Outside tests/, so that no other run collects it; the suite's fixtures
    # come in as plugins.
    inner = tmp_path / "test_inner.py"
    inner.write_text(INNER_TEST)
    pid_file = tmp_path / "service.pid"
    env = {**os.environ, "PID_FILE": str(pid_file), "BOSON_TEST_AMQP_URL": amqp_url}
    run = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT)),
            *("-p", "tests.conftest", "-p", "tests.reliability.conftest", str(inner)),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert run.poll() is None, run.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "the inner run never started its service"
            time.sleep(0.1)
        service = psutil.Process(int(pid_file.read_text()))
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=30)[0].decode(errors="replace")
        assert run.returncode != 0, output
        _, alive = psutil.wait_procs([service], timeout=10)
        for leftover in alive:
            leftover.kill()
        assert not alive, f"service {service.pid} outlived the run:\n{output[-2000:]}"
    finally:
        if run.poll() is None:
            run.kill()
