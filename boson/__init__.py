"""Boson: what users touch — the client SDK, the in-process launcher and task handlers.

``boson.Client.connect(...)`` for the SDK, ``boson.embedded()`` to run every
service in-process on the embedded broker, ``@boson.handler`` for your own
task handlers, and the errors a caller catches (all rooted at
:class:`BosonError`).

The names resolve on first use (PEP 562): ``import boson`` alone, the
simulator (``boson.simulation``) and the ``boson`` command import neither the
client nor the broker library until a name here is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boson.client import Client, TaskHandle, TaskRequest
    from boson.launcher import embedded
    from boson.records import RecordReader, TaskPage
    from boson_shared.contract.messages import (
        ResourceRequest,
        TaskProgress,
        TaskRecord,
        TaskResult,
        TimelineEntry,
    )
    from boson_shared.errors import (
        BosonError,
        BrokerUnavailableError,
        ConfigError,
        EncodeError,
        InvalidQueryError,
        InvalidTaskError,
        InvalidTaskInputError,
        PermanentTaskError,
        PublishNotConfirmedError,
        RecordError,
        RecordUnavailableError,
        TaskCancelledError,
        TaskFailedError,
        TaskNotFoundError,
        TransientError,
    )
    from boson_shared.handlers import RaisedAlert, Retry, TaskInput, TaskOutput, handler

    __version__: str

_HOMES: dict[str, str] = {
    "Client": "boson.client",
    "TaskHandle": "boson.client",
    "TaskRequest": "boson.client",
    "embedded": "boson.launcher",
    "TaskResult": "boson_shared.contract.messages",
    "ResourceRequest": "boson_shared.contract.messages",
    "TaskRecord": "boson_shared.contract.messages",
    "TimelineEntry": "boson_shared.contract.messages",
    "RecordReader": "boson.records",
    "TaskPage": "boson.records",
    "RaisedAlert": "boson_shared.handlers",
    "Retry": "boson_shared.handlers",
    "TaskInput": "boson_shared.handlers",
    "TaskOutput": "boson_shared.handlers",
    "handler": "boson_shared.handlers",
    "BosonError": "boson_shared.errors",
    "BrokerUnavailableError": "boson_shared.errors",
    "ConfigError": "boson_shared.errors",
    "EncodeError": "boson_shared.errors",
    "InvalidTaskError": "boson_shared.errors",
    "InvalidTaskInputError": "boson_shared.errors",
    "PermanentTaskError": "boson_shared.errors",
    "PublishNotConfirmedError": "boson_shared.errors",
    "TaskFailedError": "boson_shared.errors",
    "TaskCancelledError": "boson_shared.errors",
    "TaskProgress": "boson_shared.contract.messages",
    "TaskNotFoundError": "boson_shared.errors",
    "InvalidQueryError": "boson_shared.errors",
    "RecordError": "boson_shared.errors",
    "RecordUnavailableError": "boson_shared.errors",
    "TransientError": "boson_shared.errors",
}
"""Each public name and the module that defines it."""

_DISTRIBUTION = "boson"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_DISTRIBUTION)
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


if not TYPE_CHECKING:  # type checkers see the imports above, and flag any other name

    def __getattr__(name: str) -> Any:
        if name == "__version__":
            value: Any = _version()
        elif name in _HOMES:
            value = getattr(importlib.import_module(_HOMES[name]), name)
        else:
            raise AttributeError(f"module 'boson' has no attribute {name!r}")
        globals()[name] = value  # resolved once; later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BosonError",
    "BrokerUnavailableError",
    "Client",
    "ConfigError",
    "EncodeError",
    "InvalidQueryError",
    "InvalidTaskError",
    "InvalidTaskInputError",
    "PermanentTaskError",
    "PublishNotConfirmedError",
    "RaisedAlert",
    "RecordError",
    "RecordReader",
    "RecordUnavailableError",
    "ResourceRequest",
    "Retry",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskHandle",
    "TaskInput",
    "TaskNotFoundError",
    "TaskOutput",
    "TaskPage",
    "TaskProgress",
    "TaskRecord",
    "TaskRequest",
    "TaskResult",
    "TimelineEntry",
    "TransientError",
    "__version__",
    "embedded",
    "handler",
]
