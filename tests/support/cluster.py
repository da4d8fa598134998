"""Boson services as real OS processes, for end-to-end and reliability tests.

Each service runs as ``python -m boson run <service>`` with its own health
port, in the test's namespace and with a fresh keyring, exactly as an
operator would start it. Timings are shortened (heartbeats, retry delays) so
that failure detection takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from boson_shared.contract.keyring import generate_key_spec
from boson_shared.settings import BosonSettings

ROOT = Path(__file__).resolve().parents[2]

FAST_TIMINGS = {
    "BOSON_HEARTBEAT_INTERVAL_S": "0.25",
    "BOSON_MISSED_HEARTBEATS": "4",
    "BOSON_SNAPSHOT_INTERVAL_S": "0.25",
    "BOSON_RETRY_DELAYS_MS": "[200,400]",
    "BOSON_RETARGET_AFTER_S": "1.0",
    "BOSON_DRAIN_GRACE_S": "10",
    "BOSON_LOG_LEVEL": "WARNING",
}


_started: list[subprocess.Popen[bytes]] = []
"""Every service process any cluster started, for the exit-time sweep."""


@atexit.register
def _kill_leftovers() -> None:
    """Kill service processes still running when the test run ends.

    A fixture stops its cluster, but not when the run itself is cut short
    (Ctrl-C, or a SIGTERM, which ``tests/conftest.py`` turns into one): its
    services would go on consuming from the broker with nobody to stop them.
    """
    for process in _started:
        if process.poll() is None:
            process.kill()
    for process in _started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    service: str
    process: subprocess.Popen[bytes]
    health_port: int
    log_path: Path

    def health(self) -> dict[str, object] | None:
        """The service's /health body (also when it answers 503), or None."""
        url = f"http://127.0.0.1:{self.health_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read() or b"{}"
        except OSError:
            return None
        try:
            body: dict[str, object] = json.loads(raw)
        except ValueError:
            return None
        return body


@dataclass
class ProcessCluster:
    """Starts, watches and stops service processes of one test."""

    amqp_url: str
    namespace: str
    log_dir: Path
    keys: str = field(default_factory=generate_key_spec)
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
        env.update(FAST_TIMINGS)
        env.update(
            BOSON_BROKER_URL=self.amqp_url,
            BOSON_KEYS=self.keys,
            BOSON_NAMESPACE=self.namespace,
            BOSON_BLOB_DIR=str(self.log_dir / "blobs"),
            # The task record of this cluster alone, never the user's own file.
            BOSON_DATABASE_URL=f"sqlite:///{self.log_dir / 'records.sqlite3'}",
            PYTHONPATH=str(ROOT),
        )
        env.update(self.extra_env)
        return env

    def settings(self, **overrides: object) -> BosonSettings:
        """Client-side settings matching the processes' (no environment read)."""
        values: dict[str, object] = {
            "broker_url": self.amqp_url,
            "keys": self.keys,
            "namespace": self.namespace,
            "retry_delays_ms": (200, 400),
        }
        values.update(overrides)
        return BosonSettings(**values)  # type: ignore[arg-type]

    def start(self, service: str, *args: str, name: str | None = None) -> ServiceProcess:
        name = name or service
        port = free_port()
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "boson", "run", service, "--health-port", str(port), *args],
                cwd=ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _started.append(process)
        started = ServiceProcess(name, service, process, port, log_path)
        self.processes[name] = started
        return started

    async def wait_healthy(self, *names: str, timeout: float = 60.0) -> None:
        """Until every named process answers /health with status ok."""
        pending = list(names or self.processes)
        async with asyncio.timeout(timeout):
            while pending:
                for name in list(pending):
                    proc = self.processes[name]
                    if proc.process.poll() is not None:
                        raise RuntimeError(f"{name} exited: {self.log(name)[-2000:]}")
                    body = await asyncio.to_thread(proc.health)
                    if body is not None and body.get("status") == "ok":
                        pending.remove(name)
                await asyncio.sleep(0.1)

    def log(self, name: str) -> str:
        return self.processes[name].log_path.read_text(errors="replace")

    def kill(self, name: str) -> None:
        """kill -9: no drain, no goodbye."""
        proc = self.processes[name].process
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def terminate(self, name: str, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        proc = self.processes[name].process
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait(timeout=5)


__all__ = ["FAST_TIMINGS", "ProcessCluster", "ServiceProcess", "free_port"]
