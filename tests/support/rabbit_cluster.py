"""A three-node RabbitMQ cluster on this machine, for the ``cluster`` tests.

Each node is a fresh ``rabbitmq-server`` run as the ``rabbitmq`` user with a
node name, AMQP port, distribution port, data, log and pid paths, feature
flags file, enabled-plugins file and config file of its own, all under one
run directory in ``/tmp/boson-rabbit-cluster/``. The nodes share the Erlang
cookie of the host's RabbitMQ (``HOME`` is the ``rabbitmq`` user's) and the
host's epmd, but never the host's node: their names are ``boson-<run>-N@localhost``
and the second and third join the first. One Erlang scheduler per node keeps
three of them affordable on a small machine.

Cleanup: :meth:`RabbitCluster.stop` kills the nodes and deletes the run
directory; an ``atexit`` hook does the same when a run is cut short (Ctrl-C,
SIGTERM); a run killed outright (``kill -9``) leaves its directory, whose
``owner`` file names the dead pytest, and the next start sweeps it:
:func:`sweep_stale` kills the nodes its pid files name and deletes it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BASE = Path("/tmp/boson-rabbit-cluster")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
RABBIT_USER = "rabbitmq"
START_TIMEOUT_S = 120.0
CTL_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 90.0
_LIMITS = ("set_vm_memory_high_watermark", "set_disk_free_limit")


def available() -> str | None:
    """None when this machine can run the cluster, else why not."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return f"no {RABBIT_BIN}/rabbitmq-server"
    try:
        pwd.getpwnam(RABBIT_USER)
    except KeyError:
        return f"no {RABBIT_USER!r} user"
    if os.geteuid() != 0:
        return "starting RabbitMQ nodes as the rabbitmq user needs root"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class RabbitNode:
    """One node of the cluster and where it keeps everything."""

    name: str
    """Erlang node name, e.g. ``boson-ab12cd-1@localhost``."""
    amqp_port: int
    dist_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.home / "rabbit.pid"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def beam_pid(self) -> int | None:
        """The Erlang VM's pid from the node's pid file, if it is running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def environment(self) -> dict[str, str]:
        user = pwd.getpwnam(RABBIT_USER)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": user.pw_dir,
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.home / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.home / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_MNESIA_DIR": str(self.home / "mnesia" / self.name),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self.home / "feature_flags"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_LOGS": str(self.home / "log" / "rabbit.log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none "
                "-kernel inet_dist_use_interface {127,0,0,1}"
            ),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def write_files(self) -> None:
        (self.home / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.home / "log").mkdir(exist_ok=True)
        (self.home / "rabbitmq-env.conf").write_text("")
        (self.home / "enabled_plugins").write_text("[].\n")
        (self.home / "advanced.config").write_text("[].\n")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
            "loopback_users = none\n"
            "cluster_partition_handling = pause_minority\n"
            "vm_memory_high_watermark.relative = 0.4\n"
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        user = pwd.getpwnam(RABBIT_USER)
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        """Start the node (no wait); the cluster waits with ``await_startup``."""
        log = (self.home / "log" / "stdout.log").open("ab")
        user = pwd.getpwnam(RABBIT_USER)
        self.process = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.environment(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            start_new_session=True,
            pass_fds=(),
        )
        log.close()

    def kill(self) -> None:
        """``kill -9`` the node's VM (and the shell that started it)."""
        pid = self.beam_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        _wait_dead(pid)


def _wait_dead(pid: int | None, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while pid is not None and _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class RabbitCluster:
    """Three clustered nodes; ``url`` lists them all (the Boson URL list)."""

    run_dir: Path
    nodes: list[RabbitNode] = field(default_factory=list)
    startup_s: float = 0.0
    """Seconds from the first ``rabbitmq-server`` to three running, clustered nodes."""
    limits_changed: set[str] = field(default_factory=set)
    """Nodes whose memory or disk limit a test set (:meth:`heal` resets them)."""

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def ctl(self, node: RabbitNode, *args: str, timeout: float = CTL_TIMEOUT_S) -> str:
        """``rabbitmqctl -n node …`` as the rabbitmq user; stdout, or RuntimeError."""
        if args and args[0] in _LIMITS:
            self.limits_changed.add(node.name)
        user = pwd.getpwnam(RABBIT_USER)
        result = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
            env={**node.environment(), "HOME": user.pw_dir},
            cwd=user.pw_dir,
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {node.name} {' '.join(args)}: "
                f"{(result.stderr or result.stdout).decode().strip()[-2000:]}"
            )
        return result.stdout.decode()

    def await_running(self, node: RabbitNode, timeout: float = START_TIMEOUT_S) -> None:
        """Wait for ``node`` to boot (its app running), or RuntimeError with its log."""
        deadline = time.monotonic() + timeout
        while True:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited at start: {self._log_tail(node)}")
            try:
                self.ctl(node, "await_startup", "--timeout", "5", timeout=15)
                return
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{node.name} did not start within {timeout}s: {error}; "
                        f"{self._log_tail(node)}"
                    ) from None
                time.sleep(0.5)

    def _log_tail(self, node: RabbitNode) -> str:
        texts = []
        for path in (node.home / "log").glob("*"):
            with contextlib.suppress(OSError):
                texts.append(f"{path.name}: {path.read_text(errors='replace')[-1500:]}")
        return " | ".join(texts)

    def start(self) -> None:
        """Start three nodes and cluster them: join the second and third to the first."""
        started = time.monotonic()
        for node in self.nodes:
            node.write_files()
            node.start()
        for node in self.nodes:
            self.await_running(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        for node in self.nodes:
            self.await_running(node)
        self.startup_s = time.monotonic() - started

    def restart(self, node: RabbitNode) -> None:
        """Start ``node`` again after a kill (it rejoins with its data)."""
        node.start()
        self.await_running(node)

    def stop_node(self, node: RabbitNode) -> None:
        """Stop ``node`` gracefully, waiting for its VM to exit.

        ``rabbitmqctl stop`` first; on a loaded machine it may not answer in
        time, and then SIGTERM, which the VM also takes as a graceful stop
        (and SIGKILL only if that does not end it either).
        """
        pid = node.beam_pid()
        try:
            self.ctl(node, "stop", timeout=STOP_TIMEOUT_S)
        except (RuntimeError, subprocess.TimeoutExpired):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        _wait_dead(pid, within_s=STOP_TIMEOUT_S)
        if pid is not None and _pid_alive(pid):
            node.kill()
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)

    def live(self) -> list[RabbitNode]:
        return [node for node in self.nodes if node.beam_pid() is not None]

    def any_live(self, but: RabbitNode | None = None) -> RabbitNode:
        for node in self.live():
            if node is not but:
                return node
        raise RuntimeError("no node of the cluster is running")

    def heal(self) -> None:
        """Every node running again, alarms cleared: the state each test starts from.

        The limits are reset only on nodes whose limits a test changed
        (through :meth:`ctl`): each ``rabbitmqctl`` costs seconds of CPU.
        """
        for node in self.nodes:
            if node.beam_pid() is None:
                self.restart(node)
        for node in self.nodes:
            if node.name in self.limits_changed:
                self.ctl(node, "set_vm_memory_high_watermark", "0.4")
                self.ctl(node, "set_disk_free_limit", "50MB")
                self.limits_changed.discard(node.name)

    def queues(self) -> dict[str, dict[str, Any]]:
        """Every queue with its type, leader and members, as a live node sees them."""
        out = self.ctl(
            self.any_live(),
            "list_queues",
            "name",
            "type",
            "leader",
            "members",
            "online",
            "messages",
            "--formatter",
            "json",
            "-q",
        )
        return {row["name"]: row for row in json.loads(out)}

    def alarms(self, node: RabbitNode) -> list[str]:
        """Resource alarms ``node`` has raised (empty when none)."""
        out = self.ctl(node, "eval", "rabbit_alarm:get_alarms().", timeout=20)
        text = out.strip()
        return [] if text in ("[]", "") else [text]

    def node_of(self, pid: int) -> RabbitNode | None:
        """The node the process ``pid`` has an AMQP connection to (its first), if any."""
        ports = {node.amqp_port: node for node in self.nodes}
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            return None
        for connection in connections:
            if connection.raddr and connection.status == psutil.CONN_ESTABLISHED:
                node = ports.get(connection.raddr.port)
                if node is not None:
                    return node
        return None

    def stop(self) -> None:
        """Kill every node and delete the run directory (idempotent)."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _live.remove(self)


_live: list[RabbitCluster] = []


@atexit.register
def _stop_leftovers() -> None:
    """Stop clusters a run cut short (Ctrl-C or SIGTERM) left running."""
    for cluster in list(_live):
        cluster.stop()


def sweep_stale(base: Path = BASE) -> list[str]:
    """Stop and delete clusters whose pytest is gone; the names of their nodes."""
    swept: list[str] = []
    if not base.exists():
        return swept
    for run_dir in base.iterdir():
        try:
            owner = int((run_dir / "owner").read_text().strip())
        except (OSError, ValueError):
            owner = None
        if owner is not None and _pid_alive(owner):
            continue
        for pid_file in run_dir.glob("*/rabbit.pid"):
            with contextlib.suppress(OSError, ValueError, ProcessLookupError):
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGKILL)
                _wait_dead(pid)
            swept.append(pid_file.parent.name)
        shutil.rmtree(run_dir, ignore_errors=True)
    return swept


def make_cluster(size: int = 3) -> RabbitCluster:
    """A started cluster of ``size`` nodes (stale ones from killed runs swept first)."""
    sweep_stale()
    run = uuid.uuid4().hex[:6]
    run_dir = BASE / run
    run_dir.mkdir(parents=True)
    os.chmod(BASE, 0o755)
    (run_dir / "owner").write_text(str(os.getpid()))
    cluster = RabbitCluster(run_dir)
    for index in range(1, size + 1):
        name = f"boson-{run}-{index}"
        cluster.nodes.append(
            RabbitNode(f"{name}@localhost", _free_port(), _free_port(), run_dir / name)
        )
    _live.append(cluster)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


__all__ = ["RabbitCluster", "RabbitNode", "available", "make_cluster", "sweep_stale"]
