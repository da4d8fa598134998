"""The messages that cross the bus: frozen pydantic models, one ``kind`` each.

Every model is frozen, forbids unknown fields and validates ranges, so a
message that decodes is a message the services can trust. The ``kind`` field is
the discriminator (also carried, authenticated, in the envelope header); the
schema version travels in the envelope payload (``docs/wire-format.md``).

Times are float seconds since the Unix epoch: they survive msgpack unchanged
and cost nothing to compare.

This module is the contract's catalogue, and the public face every service,
the SDK and the tests import messages from. The models live in modules by
subject: :mod:`~boson_shared.contract.tasks` (a task on its way to a node),
:mod:`~boson_shared.contract.results`, :mod:`~boson_shared.contract.cancels`,
:mod:`~boson_shared.contract.cluster`, :mod:`~boson_shared.contract.held_work`,
:mod:`~boson_shared.contract.data`, :mod:`~boson_shared.contract.record` and
:mod:`~boson_shared.contract.tenants_report`, with the value types in
:mod:`~boson_shared.contract.resources` and :mod:`~boson_shared.contract.base`.
They are re-exported here as they are, so that an importer needs no map of
those modules; what is defined here is the catalogue alone: :data:`AnyMessage`
and :data:`MESSAGE_TYPES`, every kind this build knows in one order, which the
codec decodes by and the AsyncAPI document is generated from. A new kind is
defined in its subject's module and registered in both here. The subject
modules never import this one.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from pydantic import Field

from boson_shared.contract.base import (
    SCHEMA_VERSION,
    Count,
    Digest,
    Fraction,
    HandlerName,
    Identifier,
    Message,
    Model,
    NonNegative,
    new_id,
    now,
)
from boson_shared.contract.cancels import (
    MAX_CANCEL_IDS,
    CancelAnswer,
    CancelReason,
    CancelTask,
    CancelVerdict,
)
from boson_shared.contract.cluster import (
    Alert,
    AlertReason,
    BalancerBacklog,
    ClusterSnapshot,
    NodeHeartbeat,
    NodeState,
)
from boson_shared.contract.data import (
    BlobsReferenced,
    CheckData,
    DataChunk,
    DataRef,
    DataStatus,
    DataStored,
    FetchData,
)
from boson_shared.contract.held_work import (
    MAX_HELD_TASKS,
    HeldTask,
    HeldWork,
    HeldWorkBarrier,
    HeldWorkRequest,
)
from boson_shared.contract.record import (
    RECORD_QUERY_MAX_LIMIT,
    TERMINAL_STATES,
    RecordErrorCode,
    RecordQuery,
    RecordReply,
    TaskEvent,
    TaskRecord,
    TaskStage,
    TaskState,
    TimelineEntry,
    task_event,
)
from boson_shared.contract.resources import GpuState, ResourceRequest, ResourceVector
from boson_shared.contract.results import (
    MAX_LOG_BYTES,
    MAX_PROGRESS_MESSAGE,
    TaskFailure,
    TaskOutcome,
    TaskProgress,
    TaskResult,
    TaskRetrying,
    TaskUsage,
    cancelled_result,
    failed_result,
)
from boson_shared.contract.tasks import (
    NodeScore,
    PlacementExplanation,
    TaskAssigned,
    TaskPlaced,
    TaskSubmitted,
)
from boson_shared.contract.tenants_report import TenantsReport

AnyMessage: TypeAlias = Annotated[
    TaskSubmitted
    | TaskPlaced
    | TaskAssigned
    | TaskResult
    | TaskRetrying
    | CancelTask
    | CancelAnswer
    | TaskProgress
    | NodeHeartbeat
    | ClusterSnapshot
    | Alert
    | BalancerBacklog
    | DataChunk
    | CheckData
    | DataStatus
    | FetchData
    | DataStored
    | TaskEvent
    | RecordQuery
    | RecordReply
    | BlobsReferenced
    | TenantsReport
    | HeldWorkRequest
    | HeldWorkBarrier
    | HeldWork,
    Field(discriminator="kind"),
]

MESSAGE_TYPES: dict[str, type[Message]] = {
    model.model_fields["kind"].default: model
    for model in (
        TaskSubmitted,
        TaskPlaced,
        TaskAssigned,
        TaskResult,
        TaskRetrying,
        CancelTask,
        CancelAnswer,
        TaskProgress,
        NodeHeartbeat,
        ClusterSnapshot,
        Alert,
        BalancerBacklog,
        DataChunk,
        CheckData,
        DataStatus,
        FetchData,
        DataStored,
        TaskEvent,
        RecordQuery,
        RecordReply,
        BlobsReferenced,
        TenantsReport,
        HeldWorkRequest,
        HeldWorkBarrier,
        HeldWork,
    )
}
"""Every message kind this build knows, mapped to its model."""


def kind_of(model: type[Message]) -> str:
    """The ``kind`` string of a message class."""
    kind = model.model_fields["kind"].default
    assert isinstance(kind, str)
    return kind


__all__ = [
    "MAX_CANCEL_IDS",
    "MAX_HELD_TASKS",
    "MAX_LOG_BYTES",
    "MAX_PROGRESS_MESSAGE",
    "MESSAGE_TYPES",
    "RECORD_QUERY_MAX_LIMIT",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "Alert",
    "AlertReason",
    "AnyMessage",
    "BalancerBacklog",
    "BlobsReferenced",
    "CancelAnswer",
    "CancelReason",
    "CancelTask",
    "CancelVerdict",
    "CheckData",
    "ClusterSnapshot",
    "Count",
    "DataChunk",
    "DataRef",
    "DataStatus",
    "DataStored",
    "Digest",
    "FetchData",
    "Fraction",
    "GpuState",
    "HandlerName",
    "HeldTask",
    "HeldWork",
    "HeldWorkBarrier",
    "HeldWorkRequest",
    "Identifier",
    "Message",
    "Model",
    "NodeHeartbeat",
    "NodeScore",
    "NodeState",
    "NonNegative",
    "PlacementExplanation",
    "RecordErrorCode",
    "RecordQuery",
    "RecordReply",
    "ResourceRequest",
    "ResourceVector",
    "TaskAssigned",
    "TaskEvent",
    "TaskFailure",
    "TaskOutcome",
    "TaskPlaced",
    "TaskProgress",
    "TaskRecord",
    "TaskResult",
    "TaskRetrying",
    "TaskStage",
    "TaskState",
    "TaskSubmitted",
    "TaskUsage",
    "TenantsReport",
    "TimelineEntry",
    "cancelled_result",
    "failed_result",
    "kind_of",
    "new_id",
    "now",
    "task_event",
]
