"""The task record's tables: one row per task, one row per lifecycle event.

Times are float seconds since the Unix epoch, as on the wire. The event
table's key is the id of the message that reported the event, which is what
makes ingestion idempotent: a message seen twice inserts nothing the second
time and so changes nothing. ``tenant`` and ``priority`` are the task's
(``NULL`` in rows recorded before tasks had them). An absent JSON value is
SQL ``NULL`` (not JSON ``null``), so that ``COALESCE`` sees it as absent.

``boson_tenant_samples`` keeps how each tenant shared the pool over time:
one row per tenant per sampling slot (``slot_at``, the slot's start), from
the first balancer report of that slot any monitor took. The slot is the
key, so monitors that take the same reports write each sample once.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = 128

tasks = Table(
    "boson_tasks",
    metadata,
    Column("task_id", String(ID), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("handler", String(ID)),
    Column("tenant", String(ID)),
    Column("priority", Integer),
    Column("submitter", String(ID)),
    Column("complexity", Float),
    Column("data_size", Float),
    Column("input_bytes", BigInteger),
    Column("input_ref", String(64)),
    Column("requests", JSON(none_as_null=True)),
    Column("timeout_s", Float),
    Column("max_retries", Integer),
    Column("node_id", String(ID)),
    Column("strategy", String(64)),
    Column("demand", JSON(none_as_null=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("dispatches", Integer, nullable=False, default=0),
    Column("error_type", String(200)),
    Column("error_message", Text),
    Column("error_retryable", Boolean),
    Column("wall_s", Float),
    Column("cpu_s", Float),
    Column("peak_memory_bytes", BigInteger),
    # The output, msgpack-packed, when it is within the inline bound.
    Column("output", LargeBinary),
    Column("output_ref", String(64)),
    Column("output_bytes", BigInteger),
    Column("output_omitted", Boolean, nullable=False, default=False),
    Column("submitted_at", Float, nullable=False),
    Column("placed_at", Float),
    Column("assigned_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("recorded_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    # The handler's latest progress report, and its captured output (bounded).
    Column("progress", Float),
    Column("progress_message", String(500)),
    Column("progress_at", Float),
    Column("logs", Text),
    Index("ix_boson_tasks_submitted", "submitted_at", "task_id"),
    Index("ix_boson_tasks_state", "state", "submitted_at", "task_id"),
    Index("ix_boson_tasks_handler", "handler", "submitted_at", "task_id"),
    Index("ix_boson_tasks_node", "node_id", "submitted_at", "task_id"),
    Index("ix_boson_tasks_tenant", "tenant", "submitted_at", "task_id"),
    Index("ix_boson_tasks_expires", "expires_at"),
    Index("ix_boson_tasks_input_ref", "input_ref"),
    Index("ix_boson_tasks_output_ref", "output_ref"),
)

events = Table(
    "boson_task_events",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("task_id", String(ID), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("node_id", String(ID)),
    Column("source", String(64)),
    Index("ix_boson_task_events_task", "task_id", "at"),
)

tenant_samples = Table(
    "boson_tenant_samples",
    metadata,
    Column("slot_at", Float, primary_key=True),
    Column("tenant", String(ID), primary_key=True),
    Column("at", Float, nullable=False),
    Column("balancer_id", String(ID), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("weight", Float, nullable=False),
    Column("may_preempt", Boolean, nullable=False),
    # Amounts per resource, in the units of task requests (as in the report).
    Column("pool", JSON, nullable=False),
    Column("quota", JSON, nullable=False),
    Column("guarantee", JSON, nullable=False),
    Column("borrowing_limit", JSON, nullable=False),
    Column("usage", JSON, nullable=False),
    Column("borrowed", JSON, nullable=False),
    Column("pending", JSON, nullable=False),
    Column("dominant_share", Float, nullable=False),
    Column("waiting", Integer, nullable=False),
    Column("running", Integer, nullable=False),
    Column("preempted", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_boson_tenant_samples_tenant", "tenant", "slot_at"),
    Index("ix_boson_tenant_samples_expires", "expires_at"),
)

__all__ = ["events", "metadata", "tasks", "tenant_samples"]
