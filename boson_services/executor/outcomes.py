"""What a handler's run comes to: its output and usage, or the error it raised.

Shared by the runner and its worker processes (a worker's reply crosses the
pipe as these values). A handler's traceback is cut to its own frames: those
of the executor's package and of :mod:`boson_shared.handlers` never show.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boson_shared import handlers as handlers_module
from boson_shared.errors import InvalidTaskInputError, TaskError
from boson_shared.handlers import Retry, TaskOutput


@dataclass(frozen=True)
class Usage:
    wall_s: float
    cpu_s: float
    peak_memory_bytes: int


@dataclass(frozen=True)
class RunOutcome:
    output: TaskOutput
    usage: Usage
    logs: str | None = None


@dataclass(frozen=True)
class RemoteError:
    """A handler's exception, carried across the process boundary as text."""

    error_type: str
    message: str
    permanent: bool
    asked_retry: bool = False


class HandlerFailedError(TaskError):
    """A handler raised; ``error_type`` is the name of what it raised.

    ``message`` is its text followed by the last frames of its traceback (the
    user's code). ``asked_retry``: it raised :class:`~boson_shared.handlers.Retry`.
    """

    def __init__(
        self, error_type: str, message: str, *, asked_retry: bool = False, logs: str | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.asked_retry = asked_retry
        self.logs = logs
        """What the handler printed or logged before it raised."""


class InvalidInputFromWorkerError(InvalidTaskInputError):
    """A worker's handler rejected its input (never retried)."""

    error_type = "InvalidTaskInputError"


_OWN_CODE = (str(Path(__file__).resolve().parent), str(Path(handlers_module.__file__).resolve()))
USER_FRAMES = 3
"""Frames of a handler's traceback shown to its submitter (the innermost ones)."""


def describe(error: BaseException) -> str:
    """An error's text and the innermost frames of the handler's own code.

    The frames kept are those after the last one of the executor's (the
    call into the handler), so neither Boson's nor asyncio's show.
    """
    frames = traceback.extract_tb(error.__traceback__)
    own = [i for i, frame in enumerate(frames) if frame.filename.startswith(_OWN_CODE)]
    user = frames[own[-1] + 1 :] if own else frames
    text = str(error)[:2000]
    if not user:
        return text
    listed = "".join(traceback.format_list(user[-USER_FRAMES:])).rstrip()
    return f"{text}\n{listed}"


def handler_failure(error: Exception, logs: str | None = None) -> HandlerFailedError:
    return HandlerFailedError(
        type(error).__name__, describe(error), asked_retry=isinstance(error, Retry), logs=logs
    )


def as_output(value: Any) -> TaskOutput:
    return value if isinstance(value, TaskOutput) else TaskOutput(value)


__all__ = [
    "USER_FRAMES",
    "HandlerFailedError",
    "InvalidInputFromWorkerError",
    "RemoteError",
    "RunOutcome",
    "Usage",
    "as_output",
    "describe",
    "handler_failure",
]
