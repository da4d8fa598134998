"""Routing keys, header names and dead-letter reasons of the wire topology.

The names that do not depend on a namespace: what messages are published
under and what the headers of a dead-lettered or retried message say.
:mod:`boson_shared.contract.topology` builds the namespaced exchanges and
queues on them.
"""

from __future__ import annotations

DEFAULT_EXCHANGE = ""
"""The broker's default exchange: routing key = queue name."""

# Routing keys on the work exchange.
RK_SUBMIT = "task.submit"
RK_PLACED = "task.placed"
RK_PARKED = "task.parked"
"""Work the balancer re-publishes to itself (only the placed queue binds it)."""
RK_DATA_CHUNK = "data.chunk"
RK_DATA_REQUEST = "data.request"
RK_RECORD_QUERY = "record.query"
"""Questions to the task record (the monitors' record-queries queue)."""

# Routing keys on the events exchange.
RK_SNAPSHOT = "snapshot"
RK_BACKLOG = "backlog"
RK_TENANTS = "tenants"
"""The active balancer's :class:`~boson_shared.contract.tenants_report.TenantsReport`."""
RK_ALL_HEARTBEATS = "heartbeat.#"
RK_ALL_RESULTS = "result.#"
RK_ALL_ALERTS = "alert.#"
RK_ALL_DATA_STORED = "data.stored.#"
RK_RECORD_EVENT = "record.event"
"""Task lifecycle events; the record queue binds them and every result."""
RK_BLOBS_REFERENCED = "blobs.referenced"
RK_CANCEL = "task.cancel"
"""Cancel commands: every balancer's event queue and every executor's own queue bind it."""
RK_ALL_PROGRESS = "progress.#"
RK_HELD_REQUEST = "held.request"
"""A balancer that became active asks every executor what it holds."""

# Headers the runtime reads and writes.
HEADER_ATTEMPT = "x-boson-attempt"
HEADER_REASON = "x-boson-reason"
HEADER_ERROR = "x-boson-error"
HEADER_SOURCE_QUEUE = "x-boson-source-queue"
HEADER_KIND = "x-boson-kind"

# Dead-letter reasons the runtime writes into HEADER_REASON, besides the
# decode errors' own tokens (``DecodeError.reason``).
REASON_UNEXPECTED_KIND = "unexpected-kind"
"""The envelope decoded, but its kind is not one the queue takes."""
REASON_PERMANENT_ERROR = "permanent-error"
"""The handler failed in a way a retry cannot fix."""
REASON_RETRIES_EXHAUSTED = "retries-exhausted"
"""The handler failed on every attempt the retry policy allows."""
REASON_UNROUTABLE = "unroutable"
"""A reply routed to no queue (its client's queue is gone) and was parked."""


def rk_node(node_id: str) -> str:
    return f"node.{node_id}"


def rk_heartbeat(node_id: str) -> str:
    return f"heartbeat.{node_id}"


def rk_result(client_id: str) -> str:
    return f"result.{client_id}"


def rk_retrying(client_id: str) -> str:
    """News of a client's task going round again (only that client's queue binds it)."""
    return f"retrying.{client_id}"


def rk_alert(reason: str) -> str:
    return f"alert.{reason}"


def rk_data_reply(client_id: str) -> str:
    return f"data.reply.{client_id}"


def rk_record_reply(client_id: str) -> str:
    return f"record.reply.{client_id}"


def rk_cancel_answer(client_id: str) -> str:
    """Answers to a client's cancel commands, from the services that held its tasks."""
    return f"cancel.answer.{client_id}"


def rk_held_work(balancer_id: str) -> str:
    """The executors' answers to one balancer's :class:`HeldWorkRequest`."""
    return f"held.work.{balancer_id}"


def rk_progress(client_id: str) -> str:
    """Progress reports of a client's tasks (the record queue binds them all)."""
    return f"progress.{client_id}"


def rk_data_stored(client_id: str) -> str:
    """Where the transfer service announces a blob an uploader sent is stored."""
    return f"data.stored.{client_id}"


__all__ = [
    "DEFAULT_EXCHANGE",
    "HEADER_ATTEMPT",
    "HEADER_ERROR",
    "HEADER_KIND",
    "HEADER_REASON",
    "HEADER_SOURCE_QUEUE",
    "REASON_PERMANENT_ERROR",
    "REASON_RETRIES_EXHAUSTED",
    "REASON_UNEXPECTED_KIND",
    "REASON_UNROUTABLE",
    "RK_ALL_ALERTS",
    "RK_ALL_DATA_STORED",
    "RK_ALL_HEARTBEATS",
    "RK_ALL_PROGRESS",
    "RK_ALL_RESULTS",
    "RK_BACKLOG",
    "RK_BLOBS_REFERENCED",
    "RK_CANCEL",
    "RK_DATA_CHUNK",
    "RK_DATA_REQUEST",
    "RK_HELD_REQUEST",
    "RK_PARKED",
    "RK_PLACED",
    "RK_RECORD_EVENT",
    "RK_RECORD_QUERY",
    "RK_SNAPSHOT",
    "RK_SUBMIT",
    "RK_TENANTS",
    "rk_alert",
    "rk_cancel_answer",
    "rk_data_reply",
    "rk_data_stored",
    "rk_heartbeat",
    "rk_held_work",
    "rk_node",
    "rk_progress",
    "rk_record_reply",
    "rk_result",
    "rk_retrying",
]
