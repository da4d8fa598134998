"""The task record: a row per task, a row per lifecycle event.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "boson_tasks",
        sa.Column("task_id", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("handler", sa.String(128)),
        sa.Column("tenant", sa.String(128)),
        sa.Column("submitter", sa.String(128)),
        sa.Column("complexity", sa.Float),
        sa.Column("data_size", sa.Float),
        sa.Column("input_bytes", sa.BigInteger),
        sa.Column("input_ref", sa.String(64)),
        sa.Column("requests", sa.JSON),
        sa.Column("timeout_s", sa.Float),
        sa.Column("max_retries", sa.Integer),
        sa.Column("node_id", sa.String(128)),
        sa.Column("strategy", sa.String(64)),
        sa.Column("demand", sa.JSON),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("dispatches", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(200)),
        sa.Column("error_message", sa.Text),
        sa.Column("error_retryable", sa.Boolean),
        sa.Column("wall_s", sa.Float),
        sa.Column("cpu_s", sa.Float),
        sa.Column("peak_memory_bytes", sa.BigInteger),
        sa.Column("output", sa.LargeBinary),
        sa.Column("output_ref", sa.String(64)),
        sa.Column("output_bytes", sa.BigInteger),
        sa.Column("output_omitted", sa.Boolean, nullable=False),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("placed_at", sa.Float),
        sa.Column("assigned_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_boson_tasks_submitted", "boson_tasks", ["submitted_at", "task_id"])
    op.create_index("ix_boson_tasks_state", "boson_tasks", ["state", "submitted_at"])
    op.create_index("ix_boson_tasks_handler", "boson_tasks", ["handler", "submitted_at"])
    op.create_index("ix_boson_tasks_node", "boson_tasks", ["node_id", "submitted_at"])
    op.create_index("ix_boson_tasks_expires", "boson_tasks", ["expires_at"])
    op.create_index("ix_boson_tasks_input_ref", "boson_tasks", ["input_ref"])
    op.create_index("ix_boson_tasks_output_ref", "boson_tasks", ["output_ref"])
    op.create_table(
        "boson_task_events",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("node_id", sa.String(128)),
        sa.Column("source", sa.String(64)),
    )
    op.create_index("ix_boson_task_events_task", "boson_task_events", ["task_id", "at"])


def downgrade() -> None:
    op.drop_table("boson_task_events")
    op.drop_table("boson_tasks")
