"""A small process supervisor for ``boson run all``.

Each child runs until it exits. A child that exits while nobody asked it to
stop is restarted after a back-off (1 s, doubling to 30 s) while its siblings
carry on; a child that crashes too often (5 times within 60 s) stops every
child, because something is wrong that restarting will not mend. SIGTERM or
SIGINT drains every child (the signal is forwarded) and ends the supervisor
once they have exited; one still running after the grace is killed, and one
that outlives even that is left behind with a line that names it.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

STOP_GRACE_S = 60.0
KILL_WAIT_S = 5.0
"""How long a child killed after its grace has to be gone before it is left."""
_POLL_S = 0.2


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a crashed child, and when to give up on all of them."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    crash_limit: int = 5
    window_s: float = 60.0

    def delay_s(self, recent_crashes: int) -> float:
        """The pause before restarting a child that crashed ``recent_crashes`` times."""
        exponent = max(0, recent_crashes - 1)
        return float(min(self.max_delay_s, self.first_delay_s * 2.0**exponent))


@dataclass
class Child:
    """One supervised command, its current process and its recent crashes."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float | None = None


def describe_exit(code: int) -> str:
    """``exited with 3`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


class Supervisor:
    """Starts children, restarts the ones that die, drains them all on a signal."""

    def __init__(
        self,
        children: Sequence[tuple[str, list[str]]],
        *,
        env: Mapping[str, str] | None = None,
        policy: RestartPolicy | None = None,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [Child(name, command) for name, command in children]
        self.policy = policy or RestartPolicy()
        self._env = dict(env) if env is not None else None
        self._out = out
        self._clock = clock
        self.stopping = False
        self.status = 0

    def _say(self, text: str) -> None:
        print(f"boson run all: {text}", file=self._out, flush=True)

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, env=self._env)
        child.restart_at = None

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def stop(self, _signum: int = signal.SIGTERM, _frame: object = None) -> None:
        """Ask every running child to drain (idempotent; safe in a signal handler)."""
        self.stopping = True
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)

    def tick(self) -> None:
        """One look at every child: note crashes, restart those whose pause is over."""
        now = self._clock()
        for child in self.children:
            process = child.process
            if process is None:
                if child.restart_at is not None and now >= child.restart_at and not self.stopping:
                    self._say(f"restarting {child.name}")
                    self._spawn(child)
                continue
            code = process.poll()
            if code is None or self.stopping:
                continue
            child.process = None
            child.crashes.append(now)
            while child.crashes and now - child.crashes[0] > self.policy.window_s:
                child.crashes.popleft()
            if len(child.crashes) >= self.policy.crash_limit:
                self._say(
                    f"{child.name} {describe_exit(code)}; it crashed {len(child.crashes)} times "
                    f"within {self.policy.window_s:g} s, so everything stops"
                )
                self.status = 1
                self.stop()
                return
            delay = self.policy.delay_s(len(child.crashes))
            child.restart_at = now + delay
            self._say(f"{child.name} {describe_exit(code)}; restarting it in {delay:g} s")

    def run(self) -> int:
        """Supervise until stopped by a signal or by too many crashes; the exit status."""
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not self.stopping:
                self.tick()
                time.sleep(_POLL_S)
            self._reap()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.status

    def _reap(self) -> None:
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            process = child.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"{child.name} did not drain within {STOP_GRACE_S:g} s; killing it")
                process.kill()
                try:
                    # A process stuck in the kernel (a hung driver or mount)
                    # outlives even SIGKILL: the supervisor must still end.
                    process.wait(timeout=KILL_WAIT_S)
                except subprocess.TimeoutExpired:
                    self._say(
                        f"{child.name} (pid {process.pid}) did not end within {KILL_WAIT_S:g} s "
                        "of SIGKILL; leaving it"
                    )


__all__ = ["KILL_WAIT_S", "STOP_GRACE_S", "Child", "RestartPolicy", "Supervisor", "describe_exit"]
