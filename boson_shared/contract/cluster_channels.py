"""The channels of the cluster's view of itself and of the task record.

Heartbeats, the monitor's snapshot and alerts, the balancer's backlog and
tenants report; the task record's events, the questions asked of it and its
answers, and the blobs its unexpired records refer to.
Part of the catalogue :func:`boson_shared.contract.channels.channels`.
"""

from __future__ import annotations

from boson_shared.contract.channel_types import (
    CLIENT_ID,
    NODE_ID,
    REASON,
    Channel,
    ChannelQueues,
    Consumer,
)
from boson_shared.contract.messages import (
    Alert,
    BalancerBacklog,
    BlobsReferenced,
    ClusterSnapshot,
    NodeHeartbeat,
    RecordQuery,
    RecordReply,
    TaskEvent,
)
from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.contract.topology import (
    RK_ALL_HEARTBEATS,
    RK_BACKLOG,
    RK_BLOBS_REFERENCED,
    RK_RECORD_EVENT,
    RK_RECORD_QUERY,
    RK_SNAPSHOT,
    RK_TENANTS,
    Names,
    rk_alert,
    rk_heartbeat,
    rk_record_reply,
)


def cluster_channels(names: Names) -> tuple[Channel, ...]:
    """The routes of the cluster's state and the task record in ``names``' namespace."""
    work, events = names.work_exchange, names.events_exchange
    queues = ChannelQueues.of(names)
    return (
        Channel(
            "nodeHeartbeat",
            events,
            "topic",
            rk_heartbeat(NODE_ID),
            (NodeHeartbeat,),
            ("executor",),
            (queues.subscriber("monitor", RK_ALL_HEARTBEATS),),
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
                queues.subscriber("scheduler", RK_SNAPSHOT),
                queues.subscriber("balancer", RK_SNAPSHOT),
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
            (queues.subscriber("monitor", RK_BACKLOG),),
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
            (queues.subscriber("monitor", RK_TENANTS),),
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
            (Consumer("monitor", queues.record, RK_RECORD_EVENT),),
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
            (Consumer("monitor", queues.queries, RK_RECORD_QUERY),),
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
            (Consumer("client", queues.reader, rk_record_reply(CLIENT_ID)),),
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
            (queues.subscriber("transfer", RK_BLOBS_REFERENCED),),
            False,
            "After each retention sweep: the blobs unexpired task records refer to.",
        ),
    )


__all__ = ["cluster_channels"]
