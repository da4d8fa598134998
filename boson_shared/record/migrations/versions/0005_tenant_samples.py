"""How each tenant shared the pool over time: one sample per tenant per slot.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

AMOUNTS = ("pool", "quota", "guarantee", "borrowing_limit", "usage", "borrowed", "pending")


def upgrade() -> None:
    op.create_table(
        "boson_tenant_samples",
        sa.Column("slot_at", sa.Float, primary_key=True),
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("balancer_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("may_preempt", sa.Boolean, nullable=False),
        *(sa.Column(name, sa.JSON, nullable=False) for name in AMOUNTS),
        sa.Column("dominant_share", sa.Float, nullable=False),
        sa.Column("waiting", sa.Integer, nullable=False),
        sa.Column("running", sa.Integer, nullable=False),
        sa.Column("preempted", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_boson_tenant_samples_tenant", "boson_tenant_samples", ["tenant", "slot_at"])
    op.create_index("ix_boson_tenant_samples_expires", "boson_tenant_samples", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_boson_tenant_samples_expires", "boson_tenant_samples")
    op.drop_index("ix_boson_tenant_samples_tenant", "boson_tenant_samples")
    op.drop_table("boson_tenant_samples")
