"""The fold of :mod:`boson_shared.record.merge` as SQL: rows merged without being read.

Ingestion folds a batch's new events of each task into a *delta* — the row
those events alone would make (:func:`merge.new_row` + :func:`merge.fold`) —
and hands all the deltas to one ``INSERT … ON CONFLICT (task_id) DO UPDATE``:
a task new to the record gets its delta as its row; a stored one has the
delta merged in by the expressions below, which give what folding the same
events into the stored row would give:

* the state moves only forward (by :data:`merge.RANK`);
* the stage times keep the latest, attempts and dispatches the largest;
* the node follows the step that is ahead (or fills an empty one);
* the outcome's columns are taken only with the outcome;
* any other column the delta knows replaces the stored one.

A row that already holds an outcome is left alone by that statement (its
``WHERE``); a second statement fills only its empty step columns from the
batch's steps (:func:`late_steps_sql`), so a step reported after the outcome
still shows, and a second outcome changes nothing.

The statements are plain SQL run by the driver, without SQLAlchemy's
per-row parameter processing, which was most of the monitor's cost: on
PostgreSQL each is one statement over ``unnest`` of one array per column
(asyncpg encodes the arrays); on SQLite (3.24 or later) an ``executemany``
of tuples (the sqlite3 module's own loop). Each row is locked by the
statement that writes it, so two monitors merging into the same row take
turns, each on the other's committed result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, LargeBinary

from boson_shared.contract.messages import TERMINAL_STATES
from boson_shared.record import merge
from boson_shared.record.schema import tasks

KEPT = frozenset({"task_id", "submitted_at", "recorded_at"})
"""Set when the row is made; a merge leaves them."""

OUTCOME = frozenset(
    {
        "error_type",
        "error_message",
        "error_retryable",
        "wall_s",
        "cpu_s",
        "peak_memory_bytes",
        "output",
        "output_ref",
        "output_bytes",
        "output_omitted",
        "finished_at",
        "expires_at",
    }
)
LATEST = ("placed_at", "assigned_at", "started_at")
LARGEST = ("attempts", "dispatches")

STEP_COLUMNS = (
    "handler",
    "submitter",
    "tenant",
    "priority",
    "complexity",
    "data_size",
    "input_bytes",
    "input_ref",
    "requests",
    "timeout_s",
    "max_retries",
    "node_id",
    "strategy",
    "demand",
    *LATEST,
)
"""What a step may still fill in on a row that holds its outcome (if empty;
and the counts in :data:`LARGEST` grow to the step's)."""

COLUMNS: tuple[str, ...] = tuple(c.name for c in tasks.columns)
JSON_COLUMNS = frozenset(c.name for c in tasks.columns if isinstance(c.type, JSON))
TABLE = tasks.name

_FINISHED = "(" + ", ".join(f"'{state}'" for state in sorted(TERMINAL_STATES)) + ")"


def _rank(state: str) -> str:
    whens = " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in merge.RANK.items())
    return f"(CASE {state} {whens} ELSE -1 END)"


def _merged(name: str) -> str:
    """The SET expression of column ``name``: ``excluded`` is the delta."""
    given, stored = f"excluded.{name}", f"{TABLE}.{name}"
    ahead = f"{_rank('excluded.state')} >= {_rank(f'{TABLE}.state')}"
    if name == "state":
        return f"CASE WHEN {ahead} THEN {given} ELSE {stored} END"
    if name == "node_id":
        takes = f"{given} IS NOT NULL AND ({ahead} OR {stored} IS NULL)"
        return f"CASE WHEN {takes} THEN {given} ELSE {stored} END"
    if name in OUTCOME:
        return f"CASE WHEN excluded.state IN {_FINISHED} THEN {given} ELSE {stored} END"
    if name in LATEST:
        return (
            f"CASE WHEN {stored} IS NULL THEN {given} "
            f"WHEN {given} > {stored} THEN {given} ELSE {stored} END"
        )
    if name in LARGEST:
        return f"CASE WHEN {given} > {stored} THEN {given} ELSE {stored} END"
    if name == "updated_at":
        return given
    return f"COALESCE({given}, {stored})"


_ON_CONFLICT = (
    "ON CONFLICT (task_id) DO UPDATE SET "
    + ", ".join(f"{name} = {_merged(name)}" for name in COLUMNS if name not in KEPT)
    + f" WHERE {TABLE}.state NOT IN {_FINISHED}"
)

_LATE_COLUMNS = (*STEP_COLUMNS, *LARGEST, "updated_at")


def _pg_type(name: str) -> str:
    kind = tasks.c[name].type
    if isinstance(kind, JSON):
        return "text"  # cast to json in the statement
    if isinstance(kind, Float):
        return "float8"
    if isinstance(kind, BigInteger):
        return "int8"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, LargeBinary):
        return "bytea"
    return "text"


def _unnest(columns: Sequence[str]) -> str:
    arrays = ", ".join(f"${k}::{_pg_type(name)}[]" for k, name in enumerate(columns, 1))
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def _pg_value(name: str) -> str:
    return f"v.{name}::json" if name in JSON_COLUMNS else f"v.{name}"


def upsert_sql(dialect: str) -> str:
    """The merging insert of task-row deltas, as the driver takes it (on
    PostgreSQL it returns the ids of the rows it wrote)."""
    names = ", ".join(COLUMNS)
    if dialect == "postgresql":
        values = ", ".join(_pg_value(name) for name in COLUMNS)
        source = f"SELECT {values} FROM {_unnest(COLUMNS)}"
        # The rows it inserted or merged into; the rest hold their outcome.
        return f"INSERT INTO {TABLE} ({names}) {source} {_ON_CONFLICT} RETURNING {TABLE}.task_id"
    source = f"VALUES ({', '.join('?' for _ in COLUMNS)})"
    return f"INSERT INTO {TABLE} ({names}) {source} {_ON_CONFLICT}"


def late_steps_sql(dialect: str) -> str:
    """Fill the empty step columns of finished rows from steps reported late."""
    if dialect == "postgresql":
        sets = ", ".join(
            [f"{n} = COALESCE({TABLE}.{n}, {_pg_value(n)})" for n in STEP_COLUMNS]
            + [f"{n} = GREATEST({TABLE}.{n}, v.{n})" for n in LARGEST]
        )
        return (
            f"UPDATE {TABLE} SET {sets}, updated_at = v.updated_at "
            f"FROM {_unnest(('task_id', *_LATE_COLUMNS))} "
            f"WHERE {TABLE}.task_id = v.task_id AND {TABLE}.state IN {_FINISHED}"
        )
    sets = ", ".join(
        [f"{n} = COALESCE({n}, ?)" for n in STEP_COLUMNS] + [f"{n} = MAX({n}, ?)" for n in LARGEST]
    )
    return f"UPDATE {TABLE} SET {sets}, updated_at = ? WHERE task_id = ? AND state IN {_FINISHED}"


def _value(name: str, value: Any) -> Any:
    if value is not None and name in JSON_COLUMNS:
        return json.dumps(value)
    return value


def upsert_params(dialect: str, rows: Sequence[merge.Row]) -> Any:
    """The parameters of :func:`upsert_sql` for ``rows`` (complete task rows)."""
    if dialect == "postgresql":
        return tuple([_value(n, row.get(n)) for row in rows] for n in COLUMNS)
    return [tuple(_value(n, row.get(n)) for n in COLUMNS) for row in rows]


def late_steps_params(dialect: str, rows: Sequence[merge.Row], now: float) -> Any:
    """The parameters of :func:`late_steps_sql` for step-only deltas ``rows``."""
    if dialect == "postgresql":
        ids = [row["task_id"] for row in rows]
        steps = [[_value(n, row.get(n)) for row in rows] for n in (*STEP_COLUMNS, *LARGEST)]
        return (ids, *steps, [now] * len(rows))
    return [
        (*(_value(n, row.get(n)) for n in (*STEP_COLUMNS, *LARGEST)), now, row["task_id"])
        for row in rows
    ]


__all__ = [
    "COLUMNS",
    "KEPT",
    "LARGEST",
    "LATEST",
    "OUTCOME",
    "STEP_COLUMNS",
    "late_steps_params",
    "late_steps_sql",
    "upsert_params",
    "upsert_sql",
]
