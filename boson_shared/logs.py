"""Logging, configured once per process, with message and task ids in context.

Handlers set :data:`message_id_var` / :data:`task_id_var` (contextvars, so each
asyncio task sees its own) and every log record carries them, in text or JSON
form, without threading ids through every call.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from typing import Any

message_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "boson_message_id", default=None
)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "boson_task_id", default=None
)

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(service)s%(ids)s] %(message)s"


class ContextFilter(logging.Filter):
    """Stamps each record with the service name and the ids in context."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        message_id = message_id_var.get()
        task_id = task_id_var.get()
        ids = ""
        if task_id:
            ids += f" task={task_id}"
        if message_id:
            ids += f" msg={message_id}"
        record.__dict__.update(
            service=self.service, message_id=message_id, task_id=task_id, ids=ids
        )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "service": getattr(record, "service", None),
            "message": record.getMessage(),
        }
        for key in ("task_id", "message_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = False) -> None:
    """Configure the root logger once for this process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_boson", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._boson = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(_TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aio-pika/aiormq narrate every reconnect attempt at INFO; keep them quieter.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


__all__ = ["ContextFilter", "JsonFormatter", "configure_logging", "message_id_var", "task_id_var"]
