"""The broker fixture's choice of broker, exercised without Docker or RabbitMQ.

``tests/conftest.py`` takes ``BOSON_TEST_AMQP_URL`` first, then a
testcontainers RabbitMQ where a Docker engine answers, else skips with the
reason (a failure under ``BOSON_REQUIRE_BROKER=1``). These tests drive that
choice through real sockets and a real inner pytest run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _docker_answers, _docker_socket_accepts
from tests.unit.deploy_files import ROOT

BROKER_TEST = "tests/integration/test_definitions.py"


@pytest.fixture
def not_docker(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and closes them: something, not Docker."""
    path = tmp_path / "not-docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        stop.set()
        thread.join()
        server.close()


def test_no_socket_means_no_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'missing.sock'}")
    assert not _docker_socket_accepts()
    assert not _docker_answers()


def test_a_closed_tcp_port_means_no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    assert not _docker_socket_accepts()


def test_a_socket_that_is_not_docker_fails_the_ping(
    not_docker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", not_docker)
    assert _docker_socket_accepts()
    assert not _docker_answers()


def _run_broker_test(docker_host: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"BOSON_TEST_AMQP_URL", "BOSON_REQUIRE_BROKER", "PYTEST_ADDOPTS"}
    }
    environment |= {"DOCKER_HOST": docker_host, **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", BROKER_TEST],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_without_url_or_docker_the_broker_tests_skip_with_the_reason(tmp_path: Path) -> None:
    result = _run_broker_test(f"unix://{tmp_path / 'missing.sock'}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "BOSON_TEST_AMQP_URL is unset and no Docker engine answers" in result.stdout


def test_ci_turns_that_skip_into_a_failure(tmp_path: Path) -> None:
    result = _run_broker_test(f"unix://{tmp_path / 'missing.sock'}", BOSON_REQUIRE_BROKER="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BOSON_REQUIRE_BROKER=1 but no RabbitMQ" in result.stdout
