"""Task handlers: the decorator users write, and discovery by module name.

A handler is a plain module-level function marked with :func:`handler`::

    from boson import handler, TaskInput

    @handler("word_count")
    def word_count(task: TaskInput) -> int:
        return len((task.data or b"").split())

The decorator only *marks* the function (it returns the very same function),
so there is no global registry: an executor imports the modules named in its
configuration and collects what is marked (:func:`discover`). A function that
is not wrapped stays picklable, which the process pool needs.

``mode`` says where it runs: ``"process"`` (default: CPU-bound Python, off the
event loop and the GIL), ``"thread"`` (code that releases the GIL, e.g. big
numpy kernels), ``"inline"`` (trivial work; a coroutine function always runs
inline on the loop).

The task's timeout holds in every mode: a process is killed; a thread (or a
synchronous inline handler, which also runs on a thread) is reported as
timed out on time and left to finish, never keeping the executor from
exiting; a coroutine is cancelled — unless it blocks the loop without
awaiting, which no timeout can interrupt.

A handler's exception fails the task at once; raise :class:`Retry` for a
problem another attempt may not have (the submitter may also ask for
retries of every failure).

A cancelled task stops: a process-mode handler is killed with every process
it started (its worker leads a process group of its own); a thread-mode or
coroutine handler sees ``task.cancelled`` turn true, and a coroutine is also
cancelled through asyncio; a plain synchronous ``inline`` handler cannot be
interrupted, so it runs to its end and its result is discarded.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, TypeVar

from boson_shared.errors import BosonError, ConfigError
from boson_shared.task_control import TaskControl

Mode = Literal["process", "thread", "inline"]
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__boson_handler__"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


class Retry(BosonError):  # noqa: N818 - the name a handler's author writes: raise Retry(...)
    """Raised by a handler to ask for another attempt (a transient problem).

    Any other exception fails the task at once, unless its submitter asked
    for retries (``max_retries`` / ``--retries``): retrying does not mend a
    bug, while a flaky upstream is worth another go.
    """


@dataclass(frozen=True)
class TaskInput:
    """What a handler receives: the task's data, parameters and identity.

    ``task.cancelled`` turns true once someone cancels the task, and
    ``task.progress(fraction, message)`` reports how far it has got (see
    :mod:`boson_shared.task_control`).
    """

    task_id: str
    data: bytes | None
    params: Mapping[str, Any]
    attempt: int = 1
    control: TaskControl = field(default_factory=TaskControl, compare=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """Whether the task was cancelled: a handler that can stop early should."""
        return self.control.cancelled

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress, ``fraction`` from 0 to 1; cheap to call often (latest wins)."""
        self.control.progress(fraction, message)


@dataclass(frozen=True)
class RaisedAlert:
    """An alert a handler asks the executor to publish (e.g. an anomaly)."""

    detail: str
    severity: Literal["info", "warning", "critical"] = "warning"
    value: float | None = None


@dataclass(frozen=True)
class TaskOutput:
    """A handler's return value plus alerts; plain values are wrapped in one."""

    value: Any
    alerts: tuple[RaisedAlert, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HandlerSpec:
    """A discovered handler: its name, function and where it runs."""

    name: str
    function: Callable[..., Any]
    mode: Mode
    module: str
    qualname: str

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)


def handler(name: str | None = None, *, mode: Mode = "process") -> Callable[[F], F]:
    """Mark a module-level function as the task handler ``name`` (default: its name)."""

    def mark(function: F) -> F:
        handler_name = name or function.__name__
        if not _NAME.match(handler_name):
            raise ValueError(f"invalid handler name {handler_name!r}")
        if mode not in ("process", "thread", "inline"):
            raise ValueError(f"invalid handler mode {mode!r}")
        setattr(function, _MARK, (handler_name, mode))
        return function

    return mark


def handlers_in(module: ModuleType) -> dict[str, HandlerSpec]:
    """Every handler marked in ``module``."""
    found: dict[str, HandlerSpec] = {}
    for value in vars(module).values():
        mark = getattr(value, _MARK, None)
        if mark is None or not callable(value):
            continue
        name, mode = mark
        found[name] = HandlerSpec(
            name=name,
            function=value,
            mode="inline" if inspect.iscoroutinefunction(value) else mode,
            module=value.__module__,
            qualname=value.__qualname__,
        )
    return found


def discover(modules: Iterable[str]) -> dict[str, HandlerSpec]:
    """Import each module by name and collect its handlers (later names win)."""
    registry: dict[str, HandlerSpec] = {}
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(f"cannot import handler module {module_name!r}: {error}") from error
        registry.update(handlers_in(module))
    return registry


def resolve(module: str, qualname: str) -> Callable[..., Any]:
    """Find a handler function again by module and qualified name (in a worker)."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{module}:{qualname} is not callable")
    return target  # type: ignore[no-any-return]


__all__ = [
    "HandlerSpec",
    "Mode",
    "RaisedAlert",
    "Retry",
    "TaskInput",
    "TaskOutput",
    "discover",
    "handler",
    "handlers_in",
    "resolve",
]
