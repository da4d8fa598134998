"""Boson: what users touch — the ``boson`` command, the client SDK and the launcher.

``from boson import Client`` for the SDK, ``boson.embedded()`` to run every
service in-process on the embedded broker, and ``@handler`` for your own
task handlers.
"""

from boson.client import Client, TaskHandle, TaskRequest
from boson.embedded import embedded
from boson_shared.handlers import RaisedAlert, Retry, TaskInput, TaskOutput, handler

__all__ = [
    "Client",
    "RaisedAlert",
    "Retry",
    "TaskHandle",
    "TaskInput",
    "TaskOutput",
    "TaskRequest",
    "embedded",
    "handler",
]
