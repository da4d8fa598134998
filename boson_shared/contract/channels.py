"""Which message kinds travel on which route, who sends them and who takes them.

:mod:`boson_shared.contract.topology` names exchanges, queues and routing keys;
:mod:`boson_shared.contract.messages` defines the kinds. This module joins the
two: one :class:`Channel` per route a message takes, built from the same
:class:`~boson_shared.contract.topology.Names` and routing-key functions the
services use, so a renamed queue or key changes it too. The AsyncAPI document
(``boson spec asyncapi``) is generated from it.

Placeholders in braces (``{node_id}``, ``{client_id}``, ``{instance_id}``)
stand for values known only at run time; pass ``Names("{namespace}")`` to get
the namespace as a placeholder too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from boson_shared.contract.messages import (
    Alert,
    BalancerBacklog,
    BlobsReferenced,
    CancelAnswer,
    CancelTask,
    CheckData,
    ClusterSnapshot,
    DataChunk,
    DataStatus,
    DataStored,
    FetchData,
    HeldWork,
    HeldWorkBarrier,
    HeldWorkRequest,
    Message,
    NodeHeartbeat,
    RecordQuery,
    RecordReply,
    TaskAssigned,
    TaskEvent,
    TaskPlaced,
    TaskProgress,
    TaskResult,
    TaskRetrying,
    TaskSubmitted,
)
from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.contract.topology import (
    RK_ALL_HEARTBEATS,
    RK_ALL_PROGRESS,
    RK_ALL_RESULTS,
    RK_BACKLOG,
    RK_BLOBS_REFERENCED,
    RK_CANCEL,
    RK_DATA_CHUNK,
    RK_DATA_REQUEST,
    RK_HELD_REQUEST,
    RK_PARKED,
    RK_PLACED,
    RK_RECORD_EVENT,
    RK_RECORD_QUERY,
    RK_SNAPSHOT,
    RK_SUBMIT,
    RK_TENANTS,
    Names,
    QueueSpec,
    Topology,
    rk_alert,
    rk_cancel_answer,
    rk_data_reply,
    rk_data_stored,
    rk_heartbeat,
    rk_held_work,
    rk_node,
    rk_progress,
    rk_record_reply,
    rk_result,
    rk_retrying,
)

Role = Literal["client", "scheduler", "balancer", "executor", "monitor", "transfer"]

NODE_ID = "{node_id}"
CLIENT_ID = "{client_id}"
INSTANCE_ID = "{instance_id}"
REASON = "{reason}"
CLIENT_QUEUE_EXPIRES_MS = 24 * 3600 * 1000
"""A client's reply queue is deleted after a day without a consumer."""
NODE_QUEUE_EXPIRES_MS = 3_600_000
"""A node's queue outlives its executor by an hour (``node_queue_expires_s``'s default)."""
SUBSCRIBER_EXPIRES_MS = 600_000
"""Per-instance event queues of the services (``subscriber_expires_s``'s default)."""


@dataclass(frozen=True)
class Consumer:
    """One queue a channel's messages land in, and who reads it."""

    role: Role
    queue: QueueSpec
    binding_key: str
    """The key the queue is bound with (may be a topic pattern)."""


@dataclass(frozen=True)
class Channel:
    """One route: an exchange and a routing key, the kinds on it, its ends."""

    name: str
    exchange: str
    exchange_type: Literal["topic", "fanout", "direct"]
    routing_key: str
    kinds: tuple[type[Message], ...]
    publishers: tuple[Role, ...]
    consumers: tuple[Consumer, ...]
    mandatory: bool
    """Published ``mandatory``: if no queue is bound, the publisher gets an error."""
    summary: str
    parks_unroutable: bool = False
    """A message that routes to no queue is parked in the dead-letter queue
    (reason ``unroutable``) instead of being dropped."""


def _queue(topology: Topology, name: str) -> QueueSpec:
    return topology.queue(name)


def channels(names: Names) -> tuple[Channel, ...]:
    """Every route of ``names``' namespace, in the order a task travels."""
    work, events = names.work_exchange, names.events_exchange
    submit = _queue(names.submit(), names.submit_queue)
    placed = _queue(names.placed(), names.placed_queue)
    node = _queue(names.node(NODE_ID, NODE_QUEUE_EXPIRES_MS), names.node_queue(NODE_ID))
    client = _queue(names.client(CLIENT_ID, CLIENT_QUEUE_EXPIRES_MS), names.client_queue(CLIENT_ID))
    own_queue = _queue(names.client(NODE_ID, NODE_QUEUE_EXPIRES_MS), names.client_queue(NODE_ID))
    chunks = _queue(names.transfer(), names.chunks_queue)
    requests = _queue(names.transfer(), names.data_requests_queue)
    record = _queue(names.record(), names.record_queue)
    queries = _queue(names.record_queries(), names.record_queries_queue)
    # A record reader's reply queue is its connection's own (boson/records.py).
    reader = QueueSpec(
        names.subscriber_queue("records", CLIENT_ID),
        queue_type="classic",
        durable=False,
        exclusive=True,
    )

    def subscriber(role: Role, key: str) -> Consumer:
        queue_name = names.subscriber_queue(role, INSTANCE_ID)
        spec = names.subscriber(role, INSTANCE_ID, [key], SUBSCRIBER_EXPIRES_MS).queue(queue_name)
        return Consumer(role, spec, key)

    return (
        Channel(
            "taskSubmit",
            work,
            "topic",
            RK_SUBMIT,
            (TaskSubmitted,),
            ("client",),
            (Consumer("scheduler", submit, RK_SUBMIT),),
            True,
            "A client submits a task; the schedulers compete for it.",
        ),
        Channel(
            "taskPlaced",
            work,
            "topic",
            RK_PLACED,
            (TaskPlaced,),
            ("scheduler",),
            (
                Consumer("balancer", placed, RK_PLACED),
                subscriber("monitor", RK_PLACED),
            ),
            True,
            "The scheduler's placement decision, to the balancer (one active consumer); "
            "a monitor running without the task record counts a copy.",
        ),
        Channel(
            "taskParked",
            work,
            "topic",
            RK_PARKED,
            (TaskPlaced,),
            ("balancer", "executor"),
            (Consumer("balancer", placed, RK_PARKED),),
            True,
            "Work the balancer held too long, handed back to its own queue; and "
            "preempted work an executor stopped, handed back to run again later.",
        ),
        Channel(
            "taskAssigned",
            work,
            "topic",
            rk_node(NODE_ID),
            (TaskAssigned, HeldWorkBarrier),
            ("balancer", "executor"),
            (Consumer("executor", node, rk_node(NODE_ID)),),
            True,
            "The balancer dispatches a task to one node's queue; an executor asked what it "
            "holds puts a barrier into its own, behind the work dispatched there before.",
        ),
        Channel(
            "dataChunk",
            work,
            "topic",
            RK_DATA_CHUNK,
            (DataChunk,),
            ("client", "executor"),
            (Consumer("transfer", chunks, RK_DATA_CHUNK),),
            True,
            "A piece of a content-addressed upload to the transfer service.",
        ),
        Channel(
            "dataRequest",
            work,
            "topic",
            RK_DATA_REQUEST,
            (CheckData, FetchData),
            ("client", "executor"),
            (Consumer("transfer", requests, RK_DATA_REQUEST),),
            True,
            "Ask the transfer service what it holds of a blob, or to stream one back.",
        ),
        Channel(
            "taskResult",
            events,
            "topic",
            rk_result(CLIENT_ID),
            (TaskResult,),
            ("executor", "scheduler", "balancer"),
            (
                Consumer("client", client, rk_result(CLIENT_ID)),
                Consumer("monitor", record, RK_ALL_RESULTS),
                subscriber("monitor", RK_ALL_RESULTS),
                subscriber("scheduler", RK_ALL_RESULTS),
                subscriber("balancer", RK_ALL_RESULTS),
            ),
            False,
            "A task's outcome (succeeded, failed or cancelled), routed by its reply_to; "
            "a monitor's own queue binds result.# only when it runs without the task record.",
            parks_unroutable=True,
        ),
        Channel(
            "taskRetrying",
            events,
            "topic",
            rk_retrying(CLIENT_ID),
            (TaskRetrying,),
            ("executor",),
            (Consumer("client", client, rk_retrying(CLIENT_ID)),),
            False,
            "An attempt of a task failed and it will run again: news for its submitter only.",
        ),
        Channel(
            "dataReply",
            events,
            "topic",
            rk_data_reply(CLIENT_ID),
            (DataStatus, DataChunk),
            ("transfer",),
            (Consumer("client", client, rk_data_reply(CLIENT_ID)),),
            False,
            "The transfer service's answers: a data.status (parked if unroutable), or a "
            "fetched blob's chunks (dropped if unroutable: the fetcher asks again).",
        ),
        Channel(
            "dataStored",
            events,
            "topic",
            rk_data_stored(CLIENT_ID),
            (DataStored,),
            ("transfer",),
            (Consumer("client", client, rk_data_stored(CLIENT_ID)),),
            False,
            "A blob the client uploaded is stored and its digest verified.",
            parks_unroutable=True,
        ),
        Channel(
            "taskCancel",
            events,
            "topic",
            RK_CANCEL,
            (CancelTask,),
            ("client", "monitor"),
            (
                subscriber("balancer", RK_CANCEL),
                Consumer("executor", own_queue, RK_CANCEL),
            ),
            False,
            "Stop these tasks (from a client, or from the dashboard's cancel): every balancer "
            "and executor hears it; whoever holds a task stops it, the others remember the ids "
            "so the task never starts.",
        ),
        Channel(
            "heldRequest",
            events,
            "topic",
            RK_HELD_REQUEST,
            (HeldWorkRequest,),
            ("balancer",),
            (Consumer("executor", own_queue, RK_HELD_REQUEST),),
            False,
            "A balancer that became the active one, with tenants, asks every executor what "
            "it holds, so that admission counts the work already running.",
        ),
        Channel(
            "heldWork",
            events,
            "topic",
            rk_held_work(INSTANCE_ID),
            (HeldWork,),
            ("executor",),
            (subscriber("balancer", rk_held_work(INSTANCE_ID)),),
            False,
            "An executor's answer: each task it holds, with its tenant, priority and demand.",
        ),
        Channel(
            "taskCancelAnswer",
            events,
            "topic",
            rk_cancel_answer(CLIENT_ID),
            (CancelAnswer,),
            ("balancer", "executor"),
            (Consumer("client", client, rk_cancel_answer(CLIENT_ID)),),
            False,
            "A holder's answer to a cancel: stopped here, or had already finished.",
        ),
        Channel(
            "taskProgress",
            events,
            "topic",
            rk_progress(CLIENT_ID),
            (TaskProgress,),
            ("executor",),
            (
                Consumer("client", client, rk_progress(CLIENT_ID)),
                Consumer("monitor", record, RK_ALL_PROGRESS),
            ),
            False,
            "A running task's latest progress (at most about two a second per task), "
            "to its submitter and the task record.",
        ),
        Channel(
            "nodeHeartbeat",
            events,
            "topic",
            rk_heartbeat(NODE_ID),
            (NodeHeartbeat,),
            ("executor",),
            (subscriber("monitor", RK_ALL_HEARTBEATS),),
            False,
            "An executor's periodic capacity and load report.",
        ),
        Channel(
            "clusterSnapshot",
            events,
            "topic",
            RK_SNAPSHOT,
            (ClusterSnapshot,),
            ("monitor",),
            (
                subscriber("scheduler", RK_SNAPSHOT),
                subscriber("balancer", RK_SNAPSHOT),
            ),
            False,
            "The monitor's live view of the cluster.",
        ),
        Channel(
            "alert",
            events,
            "topic",
            rk_alert(REASON),
            (Alert,),
            ("monitor", "executor"),
            (),
            False,
            "Something an operator should know about; bind alert.# to see them all.",
        ),
        Channel(
            "balancerBacklog",
            events,
            "topic",
            RK_BACKLOG,
            (BalancerBacklog,),
            ("balancer",),
            (subscriber("monitor", RK_BACKLOG),),
            False,
            "The balancer's count of work held but not dispatched.",
        ),
        Channel(
            "tenantsReport",
            events,
            "topic",
            RK_TENANTS,
            (TenantsReport,),
            ("balancer",),
            (subscriber("monitor", RK_TENANTS),),
            False,
            "How the tenants share the pool: each one's quota, guarantee, usage, "
            "borrowing and waiting work, from the active balancer.",
        ),
        Channel(
            "taskEvent",
            events,
            "topic",
            RK_RECORD_EVENT,
            (TaskEvent,),
            ("scheduler", "balancer", "executor"),
            (Consumer("monitor", record, RK_RECORD_EVENT),),
            False,
            "A step of a task's life for the task record (never the task's data); the "
            "durable record queue, consumed by competing monitors, also binds every result.",
        ),
        Channel(
            "recordQuery",
            work,
            "topic",
            RK_RECORD_QUERY,
            (RecordQuery,),
            ("client",),
            (Consumer("monitor", queries, RK_RECORD_QUERY),),
            False,
            "A question to the task record: one task by id, or a filtered page.",
        ),
        Channel(
            "recordReply",
            events,
            "topic",
            rk_record_reply(CLIENT_ID),
            (RecordReply,),
            ("monitor",),
            (Consumer("client", reader, rk_record_reply(CLIENT_ID)),),
            False,
            "The task record's answer, to the asking reader's own reply queue.",
        ),
        Channel(
            "blobsReferenced",
            events,
            "topic",
            RK_BLOBS_REFERENCED,
            (BlobsReferenced,),
            ("monitor",),
            (subscriber("transfer", RK_BLOBS_REFERENCED),),
            False,
            "After each retention sweep: the blobs unexpired task records refer to.",
        ),
    )


__all__ = [
    "CLIENT_ID",
    "CLIENT_QUEUE_EXPIRES_MS",
    "INSTANCE_ID",
    "NODE_ID",
    "NODE_QUEUE_EXPIRES_MS",
    "REASON",
    "SUBSCRIBER_EXPIRES_MS",
    "Channel",
    "Consumer",
    "Role",
    "channels",
]
