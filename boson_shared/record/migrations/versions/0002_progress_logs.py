"""A task's latest progress and its captured output; ``cancelled`` is a state.

The state column already holds any short string, so the new terminal state
``cancelled`` needs no change to it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("boson_tasks") as batch:
        batch.add_column(sa.Column("progress", sa.Float))
        batch.add_column(sa.Column("progress_message", sa.String(500)))
        batch.add_column(sa.Column("progress_at", sa.Float))
        batch.add_column(sa.Column("logs", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("boson_tasks") as batch:
        batch.drop_column("logs")
        batch.drop_column("progress_at")
        batch.drop_column("progress_message")
        batch.drop_column("progress")
