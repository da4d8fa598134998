"""A task's priority beside its tenant, and the tenant filter's index.

The ``tenant`` column has been there since the first revision, empty; rows
recorded before this revision keep ``NULL`` in both.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("boson_tasks") as batch:
        batch.add_column(sa.Column("priority", sa.Integer))
    op.create_index("ix_boson_tasks_tenant", "boson_tasks", ["tenant", "submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_boson_tasks_tenant", "boson_tasks")
    with op.batch_alter_table("boson_tasks") as batch:
        batch.drop_column("priority")
