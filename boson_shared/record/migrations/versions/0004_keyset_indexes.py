"""The filtered lists' indexes end in the list's whole order: (column, submitted_at, task_id).

A page of the record filtered by state, handler, node or tenant is ordered
by ``submitted_at DESC, task_id DESC`` and continues after a cursor on that
pair. With the pair in the filter's index after the filtered column, the
database reads the page straight off the index, newest first, and starts a
deep page at its cursor; with ``(column, submitted_at)`` alone, rows of one
``submitted_at`` still had to be sorted by ``task_id`` and the cursor's
bound checked row by row. Each new index replaces the one it extends (same
name), so writes keep one index per filter.

On PostgreSQL the indexes are built inside the migration's transaction,
which holds writes to the table while it builds: brief for a record of a
few hundred thousand rows.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FILTERED = ("state", "handler", "node", "tenant")
"""Index name suffix; the column is the same but for ``node`` (``node_id``)."""


def _column(suffix: str) -> str:
    return "node_id" if suffix == "node" else suffix


def upgrade() -> None:
    for suffix in FILTERED:
        name = f"ix_boson_tasks_{suffix}"
        op.drop_index(name, "boson_tasks")
        op.create_index(name, "boson_tasks", [_column(suffix), "submitted_at", "task_id"])


def downgrade() -> None:
    for suffix in FILTERED:
        name = f"ix_boson_tasks_{suffix}"
        op.drop_index(name, "boson_tasks")
        op.create_index(name, "boson_tasks", [_column(suffix), "submitted_at"])
