"""What a handler prints or logs, captured per task: bounded, secrets removed.

A worker process runs one task at a time, so it simply points ``sys.stdout``,
``sys.stderr`` and a root logging handler at the task's buffer for the run
(:func:`captured`). Thread-mode and coroutine handlers share the executor's
own process: :func:`install` once puts routers in front of ``sys.stdout`` and
``sys.stderr`` and a handler on the root logger, and each sends text to the
buffer of the task whose context is running (a context variable), or on to
where it went before. Boson's own loggers and the broker library's are never
captured, and :func:`redact` removes the process's secrets (keys, broker and
database passwords) from the text before it leaves the executor.

Only Python-level output is captured: what a handler's child processes or C
code write straight to file descriptors 1 and 2 is not.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import re
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TextIO
from urllib.parse import urlsplit

from boson_shared.contract.messages import MAX_LOG_BYTES

REDACTED = "[redacted]"
_OWN_LOGGERS = ("boson_shared", "boson_services", "boson.", "aio_pika", "aiormq", "asyncio")
_SECRET_ASSIGNMENT = re.compile(r"(BOSON_[A-Z_]*(?:KEYS|URL|TOKEN|PASSWORD)\s*[=:]\s*)\S+")
_FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s")


class TailBuffer:
    """The last ``limit`` bytes written to it (UTF-8), thread-safe."""

    def __init__(self, limit: int = MAX_LOG_BYTES) -> None:
        self.limit = limit
        self._chunks: deque[str] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self.dropped = False

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._chunks.append(text)
            self._size += len(text.encode("utf-8", "replace"))
            while self._size > self.limit and len(self._chunks) > 1:
                self._size -= len(self._chunks.popleft().encode("utf-8", "replace"))
                self.dropped = True

    def text(self) -> str | None:
        """What was kept (its tail, within ``limit`` bytes), or None if nothing was written."""
        with self._lock:
            if not self._chunks:
                return None
            raw = "".join(self._chunks).encode("utf-8", "replace")
        if len(raw) > self.limit:
            raw = raw[-self.limit :]
            self.dropped = True
        return raw.decode("utf-8", "ignore")


current: contextvars.ContextVar[TailBuffer | None] = contextvars.ContextVar(
    "boson_task_output", default=None
)
"""The buffer of the task whose handler runs in this context (None: not a handler)."""


def _captured_logger(name: str) -> bool:
    return not (name == "boson" or name.startswith(_OWN_LOGGERS))


class _Router(io.TextIOBase):
    """A stand-in for ``sys.stdout`` / ``sys.stderr``: the running task's buffer, or on."""

    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        buffer = current.get()
        if buffer is None:
            return self.target.write(text)
        buffer.write(text)
        return len(text)

    def flush(self) -> None:
        if current.get() is None:
            self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")


class _BufferHandler(logging.Handler):
    """Log records of a handler's own loggers, into the running task's buffer."""

    def __init__(self, fixed: TailBuffer | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.fixed = fixed
        self.setFormatter(_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        buffer = self.fixed or current.get()
        if buffer is None or not _captured_logger(record.name):
            return
        try:
            buffer.write(self.format(record) + "\n")
        except Exception:  # a record that does not format must not fail the task
            self.handleError(record)


_install_lock = threading.Lock()
_log_handler = _BufferHandler()


def install() -> None:
    """Route this process's output per task (cheap and idempotent: called before each run).

    Checked each time, not once: whoever replaced ``sys.stdout`` since (a
    test runner's capture, an embedding application) is routed through again.
    """
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)
        root = logging.getLogger()
        if _log_handler not in root.handlers:
            root.addHandler(_log_handler)


@contextlib.contextmanager
def captured(buffer: TailBuffer) -> Iterator[None]:
    """In a worker process: everything printed or logged goes to ``buffer`` meanwhile."""
    root = logging.getLogger()
    handler = _BufferHandler(buffer)
    level = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    out, err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = _Router(out)
    token = current.set(buffer)
    try:
        yield
    finally:
        current.reset(token)
        sys.stdout, sys.stderr = out, err
        root.removeHandler(handler)
        root.setLevel(level)


def secrets_of(values: Iterable[str | None]) -> tuple[str, ...]:
    """The strings :func:`redact` removes: each value, a keyring's keys, a URL's password."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        for part in re.split(r"[,\s]+", value):
            found.add(part)
            _, colon, key = part.partition(":")
            if colon and len(key) >= 16:
                found.add(key)
            with contextlib.suppress(ValueError):
                password = urlsplit(part).password
                if password:
                    found.add(password)
    # Longest first, so a value is removed whole before any part of it.
    return tuple(sorted((s for s in found if len(s) >= 6), key=len, reverse=True))


def redact(text: str | None, secrets: Iterable[str]) -> str | None:
    """``text`` without any of ``secrets`` (nor ``BOSON_…KEYS=…``-style assignments)."""
    if text is None:
        return None
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + REDACTED, text)


__all__ = [
    "REDACTED",
    "TailBuffer",
    "captured",
    "current",
    "install",
    "redact",
    "secrets_of",
]
