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

A row that already holds an outcome is left out (the ``WHERE`` of the
update; it is then missing from the statement's ``RETURNING``): the caller
fills only its empty columns from the batch's steps
(:func:`late_steps`), and a second outcome changes nothing.

PostgreSQL and SQLite (3.35 or later) both take this statement; each row is
locked by the statement that writes it, so two monitors merging into the
same row take turns, each on the other's committed result.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, func, literal_column, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from boson_shared.contract.messages import TERMINAL_STATES
from boson_shared.record import merge
from boson_shared.record.schema import tasks

KEPT = frozenset({"task_id", "tenant", "submitted_at", "recorded_at"})
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
"""What a step may still fill in on a row that holds its outcome (if empty)."""

# Constants written into the statement, not bound: the statement runs as an
# executemany, which takes no expanding (IN) parameters.
_TERMINAL: list[ColumnElement[Any]] = [
    literal_column(f"'{state}'") for state in sorted(TERMINAL_STATES)
]


def _rank(state: Any) -> ColumnElement[Any]:
    return case(
        *(
            (state == literal_column(f"'{name}'"), literal_column(str(rank)))
            for name, rank in merge.RANK.items()
        ),
        else_=literal_column("-1"),
    )


def upsert(dialect: str) -> Any:
    """The merging insert of task-row deltas for ``dialect``; it returns the
    ids of the rows it inserted or merged into."""
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(tasks)
    new, old = statement.excluded, tasks.c
    ahead = _rank(new.state) >= _rank(old.state)
    finished = new.state.in_(_TERMINAL)
    merged: dict[str, Any] = {}
    for column in tasks.columns:
        name = column.name
        if name in KEPT:
            continue
        given, stored = new[name], old[name]
        if name == "state":
            merged[name] = case((ahead, given), else_=stored)
        elif name == "node_id":
            takes = and_(given.is_not(None), or_(ahead, stored.is_(None)))
            merged[name] = case((takes, given), else_=stored)
        elif name in OUTCOME:
            merged[name] = case((finished, given), else_=stored)
        elif name in LATEST:
            merged[name] = case((stored.is_(None), given), (given > stored, given), else_=stored)
        elif name in LARGEST:
            merged[name] = case((given > stored, given), else_=stored)
        elif name == "updated_at":
            merged[name] = given
        else:
            merged[name] = func.coalesce(given, stored)
    return statement.on_conflict_do_update(
        index_elements=["task_id"], set_=merged, where=old.state.not_in(_TERMINAL)
    ).returning(old.task_id)


def late_steps() -> Any:
    """Fill a finished row's empty step columns (an executemany over
    ``key_task_id``, the :data:`STEP_COLUMNS` and ``updated_at``)."""
    return (
        update(tasks)
        .where(tasks.c.task_id == bindparam("key_task_id"), tasks.c.state.in_(_TERMINAL))
        .values(
            {
                name: func.coalesce(tasks.c[name], bindparam(name, type_=tasks.c[name].type))
                for name in STEP_COLUMNS
            }
            | {"updated_at": bindparam("updated_at")}
        )
    )


__all__ = ["KEPT", "LARGEST", "LATEST", "OUTCOME", "STEP_COLUMNS", "late_steps", "upsert"]
