"""Stored task rows as the record's wire view (:class:`TaskRecord`): pure, no I/O.

A read selects only the columns a record shows (:data:`RECORD_COLUMNS`, or
:data:`LISTED_COLUMNS` for a page without outputs and logs): the rest —
what a task asked for, its timeout and retries, the store's own bookkeeping
times — stays in the database instead of being fetched and decoded for every
row. Each row becomes the record's fields as plain values (nested models as
dicts), and a whole page of them is validated in one call through a
:class:`~pydantic.TypeAdapter`, which builds the same models, with the same
checks, as constructing each record and its nested parts one by one, at a
fraction of the interpreter's work per row.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
from pydantic import TypeAdapter
from sqlalchemy import Column

from boson_shared.contract.messages import TaskRecord
from boson_shared.record.merge import Row
from boson_shared.record.schema import tasks

RECORD_COLUMNS: tuple[Column[Any], ...] = tuple(
    c
    for c in tasks.columns
    if c.name not in ("requests", "timeout_s", "max_retries", "recorded_at", "updated_at")
)
"""The task columns :func:`record_fields` reads, in the table's order."""
LISTED_COLUMNS: tuple[Column[Any], ...] = tuple(
    c for c in RECORD_COLUMNS if c.name not in ("output", "logs")
)
"""The same without a task's output and logs (a page that does not show them)."""

_RECORDS = TypeAdapter(list[TaskRecord])


_FIELD_COLUMNS = (
    *("task_id", "state", "handler", "tenant", "priority", "submitter", "complexity"),
    *("data_size", "input_bytes", "input_ref", "node_id", "strategy", "demand", "attempts"),
    *("dispatches", "error_type", "error_message", "error_retryable", "wall_s", "cpu_s"),
    *("peak_memory_bytes", "output", "output_ref", "output_bytes", "output_omitted"),
    *("submitted_at", "placed_at", "assigned_at", "started_at", "finished_at", "expires_at"),
    *("progress", "progress_message", "progress_at", "logs"),
)
"""The columns a record's fields come from (those of :data:`RECORD_COLUMNS`),
in the order :func:`_fields` takes them."""


class RowShape:
    """Rows of one statement's columns (``names``, in order) made records.

    A row is read by position, not through a dict per row: each column a
    record shows is picked from the row tuple in one C call (columns the
    statement lacks read as ``NULL``) and the fields are shaped from those
    values. The result is the same as :func:`record_fields` of the row as a dict.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        missing = len(self.names)  # the NULL appended to every row
        position = {name: i for i, name in enumerate(self.names)}
        self._pick = operator.itemgetter(*(position.get(n, missing) for n in _FIELD_COLUMNS))
        self.task_id = position["task_id"]
        self.submitted_at = position["submitted_at"]

    def fields(self, row: Sequence[Any], timeline: Sequence[Row] | None = None) -> dict[str, Any]:
        """The fields of the record of ``row`` (and its timeline, oldest first)."""
        return _fields(self._pick((*row, None)), timeline)

    def records(self, rows: Iterable[Sequence[Any]]) -> list[TaskRecord]:
        """The records of ``rows`` (without timelines), validated in one call."""
        pick = self._pick
        return _RECORDS.validate_python([_fields(pick((*row, None)), None) for row in rows])

    def record(self, row: Sequence[Any], timeline: Sequence[Row] | None = None) -> TaskRecord:
        """The record of one ``row`` and its timeline (oldest first)."""
        return TaskRecord.model_validate(self.fields(row, timeline))


def record_fields(row: Row, timeline: Sequence[Row] | None = None) -> dict[str, Any]:
    """The fields of the record of a stored ``row`` (and its timeline, oldest first).

    A column a row lacks reads as ``NULL``.
    """
    return _fields(tuple(map(row.get, _FIELD_COLUMNS)), timeline)


def _fields(values: tuple[Any, ...], timeline: Sequence[Row] | None) -> dict[str, Any]:
    """The record's fields from the values of :data:`_FIELD_COLUMNS`, in order."""
    (
        task_id,
        state,
        handler,
        tenant,
        priority,
        submitter,
        complexity,
        data_size,
        input_bytes,
        input_ref,
        node_id,
        strategy,
        demand,
        attempts,
        dispatches,
        error_type,
        error_message,
        error_retryable,
        wall_s,
        cpu_s,
        peak_memory_bytes,
        output,
        output_ref,
        output_bytes,
        output_omitted,
        submitted_at,
        placed_at,
        assigned_at,
        started_at,
        finished_at,
        expires_at,
        progress,
        progress_message,
        progress_at,
        logs,
    ) = values
    error = None
    if error_type:
        error = {
            "error_type": error_type,
            "message": error_message or "",
            "retryable": bool(error_retryable),
        }
    usage = None
    if wall_s is not None:
        usage = {
            "wall_s": wall_s,
            "cpu_s": cpu_s or 0.0,
            "peak_memory_bytes": peak_memory_bytes or 0,
        }
    stored = {"digest": output_ref, "size": output_bytes or 0} if output_ref else None
    if output is not None:
        output = msgpack.unpackb(output, raw=False, strict_map_key=False)
    return {
        "task_id": task_id,
        "state": state,
        "handler": handler,
        "tenant": tenant,
        "priority": priority,
        "submitter": submitter,
        "complexity": complexity,
        "data_size": data_size,
        "input_bytes": input_bytes,
        "input_ref": input_ref,
        "node_id": node_id,
        "strategy": strategy,
        "demand": demand or None,
        "attempts": attempts or 0,
        "dispatches": dispatches or 0,
        "error": error,
        "usage": usage,
        "output": output,
        "output_ref": stored,
        "output_omitted": bool(output_omitted),
        "submitted_at": submitted_at,
        "placed_at": placed_at,
        "assigned_at": assigned_at,
        "started_at": started_at,
        "finished_at": finished_at,
        "expires_at": expires_at,
        "progress": progress,
        "progress_message": progress_message or "",
        "progress_at": progress_at,
        "logs": logs,
        "timeline": tuple(
            {
                "stage": entry["stage"],
                "at": entry["at"],
                "node_id": entry["node_id"],
                "source": entry["source"],
            }
            for entry in timeline or ()
        ),
    }


def to_records(rows: Iterable[Row]) -> list[TaskRecord]:
    """The records of stored ``rows`` (without timelines), validated in one call."""
    return _RECORDS.validate_python([record_fields(row) for row in rows])


def to_record(row: Row, timeline: Sequence[Row] | None = None) -> TaskRecord:
    """The record of one stored ``row`` and its timeline (oldest first)."""
    return TaskRecord.model_validate(record_fields(row, timeline))


__all__ = [
    "LISTED_COLUMNS",
    "RECORD_COLUMNS",
    "RowShape",
    "record_fields",
    "to_record",
    "to_records",
]
