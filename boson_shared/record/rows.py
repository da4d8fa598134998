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


def record_fields(row: Row, timeline: Sequence[Row] | None = None) -> dict[str, Any]:
    """The fields of the record of a stored ``row`` (and its timeline, oldest first).

    A column a row lacks reads as ``NULL``.
    """
    get = row.get
    error = None
    if get("error_type"):
        error = {
            "error_type": row["error_type"],
            "message": get("error_message") or "",
            "retryable": bool(get("error_retryable")),
        }
    usage = None
    if get("wall_s") is not None:
        usage = {
            "wall_s": row["wall_s"],
            "cpu_s": get("cpu_s") or 0.0,
            "peak_memory_bytes": get("peak_memory_bytes") or 0,
        }
    output_ref = None
    if get("output_ref"):
        output_ref = {"digest": row["output_ref"], "size": get("output_bytes") or 0}
    output = None
    if get("output") is not None:
        output = msgpack.unpackb(row["output"], raw=False, strict_map_key=False)
    return {
        "task_id": row["task_id"],
        "state": row["state"],
        "handler": get("handler"),
        "tenant": get("tenant"),
        "priority": get("priority"),
        "submitter": get("submitter"),
        "complexity": get("complexity"),
        "data_size": get("data_size"),
        "input_bytes": get("input_bytes"),
        "input_ref": get("input_ref"),
        "node_id": get("node_id"),
        "strategy": get("strategy"),
        "demand": get("demand") or None,
        "attempts": get("attempts") or 0,
        "dispatches": get("dispatches") or 0,
        "error": error,
        "usage": usage,
        "output": output,
        "output_ref": output_ref,
        "output_omitted": bool(get("output_omitted")),
        "submitted_at": row["submitted_at"],
        "placed_at": get("placed_at"),
        "assigned_at": get("assigned_at"),
        "started_at": get("started_at"),
        "finished_at": get("finished_at"),
        "expires_at": get("expires_at"),
        "progress": get("progress"),
        "progress_message": get("progress_message") or "",
        "progress_at": get("progress_at"),
        "logs": get("logs"),
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


__all__ = ["LISTED_COLUMNS", "RECORD_COLUMNS", "record_fields", "to_record", "to_records"]
