"""The messages that cross the bus: frozen pydantic models, one ``kind`` each.

Every model is frozen, forbids unknown fields and validates ranges, so a
message that decodes is a message the services can trust. The ``kind`` field is
the discriminator (also carried, authenticated, in the envelope header); the
schema version travels in the envelope payload (``docs/wire-format.md``).

Times are float seconds since the Unix epoch: they survive msgpack unchanged
and cost nothing to compare.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import Field, StringConstraints, model_validator

from boson_shared.contract.base import (
    DEFAULT_TENANT,
    SCHEMA_VERSION,
    Count,
    Digest,
    Fraction,
    HandlerName,
    Identifier,
    Message,
    Model,
    NonNegative,
    Priority,
    TenantName,
    Timestamp,
    new_id,
    now,
)
from boson_shared.contract.tenants_report import TenantSample, TenantsReport


class ResourceVector(Model):
    """Resource amounts in demand units, one per dimension."""

    cpu: NonNegative = Field(default=0.0, description="Demand units.")
    memory: NonNegative = Field(default=0.0, description="Demand units.")
    gpu: NonNegative = Field(default=0.0, description="Demand units.")

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.cpu, self.memory, self.gpu)


GpuModels: TypeAlias = Annotated[
    str,
    StringConstraints(
        max_length=2100, pattern=r"^[A-Za-z0-9._ -]{1,64}(\|[A-Za-z0-9._ -]{1,64}){0,31}$"
    ),
]
"""GPU model names separated by ``|``: a request's devices must be one of them."""

DeviceIndex: TypeAlias = Annotated[int, Field(ge=0, le=61)]
"""A GPU device's number on its node (0-based; a node has at most 62)."""


class ResourceRequest(Model):
    """Explicit per-dimension requests; each one set overrides the demand model.

    ``gpu`` below 1 is a share of ONE device; 1 or more is that many whole
    devices on one node, so it must then be a whole number. ``gpu_model``
    limits which devices qualify (``"A100|H100"``).
    """

    cpu: NonNegative | None = None
    memory: NonNegative | None = None
    gpu: Annotated[float, Field(ge=0, le=62, allow_inf_nan=False)] | None = None
    gpu_model: GpuModels | None = None

    @model_validator(mode="after")
    def _whole_gpus(self) -> ResourceRequest:
        if self.gpu is not None and self.gpu >= 1 and self.gpu != int(self.gpu):
            raise ValueError(
                f"a GPU request of 1 or more is a number of whole devices, got {self.gpu}"
            )
        return self


class GpuState(Model):
    """One GPU device of a node: what it is and, live, how it is used."""

    index: DeviceIndex
    uuid: Annotated[str, StringConstraints(max_length=128)] | None = None
    model: Annotated[str, StringConstraints(max_length=64)] = ""
    memory_mib: Count = Field(default=0, description="Device memory in MiB (0: not known).")
    allocated_milli: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0, description="Thousandths of the device held by tasks placed there."
    )
    utilisation: Fraction | None = Field(default=None, description="Measured (NVML), if known.")
    memory_used_mib: Count | None = Field(default=None, description="Measured (NVML), if known.")


class DataRef(Model):
    """A content-addressed blob held by the transfer service."""

    digest: Digest
    size: Count = Field(description="The blob's size in bytes.")


class TaskSubmitted(Message):
    """A user's task, as the client publishes it (and as it travels on)."""

    kind: Literal["task.submitted"] = "task.submitted"
    schema_version: ClassVar[int] = 4
    # v1: no retry_errors; v2: no gpu_model in its requests; v3: no tenant, priority
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    task_id: Identifier
    handler: HandlerName
    params: dict[str, Any] = Field(default_factory=dict)
    data: bytes | None = None
    data_ref: DataRef | None = None
    complexity: NonNegative = Field(
        default=0.0, description="Demand units the task's work costs, before its data."
    )
    data_size: NonNegative = Field(
        default=0.0, description="Size of the task's input in KiB (1024 bytes)."
    )
    requests: ResourceRequest | None = None
    timeout_s: Annotated[float, Field(gt=0, le=7 * 24 * 3600, allow_inf_nan=False)] = Field(
        default=300.0, description="Seconds the handler may run before the attempt fails."
    )
    max_retries: Annotated[int, Field(ge=0, le=25)] = 3
    """Retries of what retrying can fix: a node that died, a timeout, a transient
    error, a handler that raised :class:`~boson_shared.handlers.Retry`."""
    retry_errors: bool = False
    """Retry a handler's own exceptions too (the user asked for retries);
    otherwise one fails the task at once."""
    reply_to: Identifier = Field(
        description="Client id: the result is published with routing key result.<reply_to>."
    )
    submitted_at: Timestamp = Field(default_factory=now)
    explain: bool = False
    tenant: TenantName = DEFAULT_TENANT
    """The team or account the task's work counts against (docs/scheduling.md#tenants)."""
    priority: Priority = 0
    """Within its tenant, a higher priority is admitted first."""

    @model_validator(mode="after")
    def _one_data_source(self) -> TaskSubmitted:
        if self.data is not None and self.data_ref is not None:
            raise ValueError("a task carries inline data or a data_ref, not both")
        return self


class NodeScore(Model):
    """One node's view of one placement decision (for ``explain``)."""

    node_id: Identifier
    alive: bool
    fits: bool
    score: float | None
    utilisation_before: NonNegative
    utilisation_after: NonNegative | None


class PlacementExplanation(Model):
    """Why a task went where it went: every node's fit and score."""

    strategy: str
    nodes: tuple[NodeScore, ...]


class TaskPlaced(Message):
    """The scheduler's decision: a node, or ``node_id=None`` for pending."""

    kind: Literal["task.placed"] = "task.placed"
    schema_version: ClassVar[int] = 4
    # v1: its task was v1; v2: no devices; v3: its task had no tenant, priority
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    task: TaskSubmitted
    demand: ResourceVector
    node_id: Identifier | None
    devices: tuple[DeviceIndex, ...] = ()
    """The node's GPU devices chosen for the task (none without a GPU part)."""
    strategy: str
    placed_at: Timestamp = Field(default_factory=now)
    explanation: PlacementExplanation | None = None
    dispatched: Count = 0
    """Times the task was dispatched before this placement (a preempted task's
    runs so far): its next assignment is dispatch ``dispatched + 1``."""
    preempted: Count = 0
    """Times the task was preempted: above 0, an executor handed it back to
    the balancer, which puts it at the front of its tenant's line."""


class TaskAssigned(Message):
    """The balancer hands a task to one node's queue."""

    kind: Literal["task.assigned"] = "task.assigned"
    schema_version: ClassVar[int] = 4
    # v1: its task was v1; v2: no devices; v3: its task had no tenant, priority
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    task: TaskSubmitted
    demand: ResourceVector
    node_id: Identifier
    devices: tuple[DeviceIndex, ...] = ()
    """The GPU devices of the node the executor binds the task to."""
    dispatch: Count = 1
    assigned_at: Timestamp = Field(default_factory=now)
    preempted: Count = 0
    """Times the task was preempted before this assignment (runs that count
    as no failure)."""


class TaskUsage(Model):
    """What a task really used, for the online demand model."""

    wall_s: NonNegative = Field(description="Wall-clock seconds the handler ran.")
    cpu_s: NonNegative = Field(description="CPU seconds the handler used.")
    peak_memory_bytes: Count = Field(description="Peak resident memory in bytes.")


class TaskFailure(Model):
    """Why a task failed: the error type and its message (never secrets)."""

    error_type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    message: Annotated[str, StringConstraints(max_length=4000)]
    retryable: bool = False


MAX_LOG_BYTES = 64 * 1024
"""What a task's captured output keeps: its last 64 KiB."""

TaskOutcome: TypeAlias = Literal["succeeded", "failed", "cancelled"]


class TaskResult(Message):
    """A task's outcome; a failed or cancelled one too, so that no caller waits forever.

    Schema version 2: ``status`` may be ``cancelled`` (the task was stopped,
    or never started, at someone's request: no error, no output), and ``logs``
    carries what the handler printed or logged (its last :data:`MAX_LOG_BYTES`).
    Version 3: ``started_at``, when the task ended before the executor had
    reported its start to the task record (the result reports it instead).
    """

    kind: Literal["task.result"] = "task.result"
    schema_version: ClassVar[int] = 3
    # v1: no cancelled, no logs; v2: no started_at
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2})
    task_id: Identifier
    handler: HandlerName
    status: TaskOutcome
    output: Any = None
    output_ref: DataRef | None = None
    error: TaskFailure | None = None
    node_id: Identifier | None = None
    attempts: Count = 1
    usage: TaskUsage | None = None
    demand: ResourceVector | None = None
    complexity: NonNegative = 0.0
    data_size: NonNegative = 0.0
    reply_to: Identifier
    submitted_at: Timestamp
    finished_at: Timestamp = Field(default_factory=now)
    logs: Annotated[str, StringConstraints(max_length=MAX_LOG_BYTES)] | None = None
    started_at: Timestamp | None = None
    """When this run started, if no ``started`` event of the task record said
    so: the executor holds a start back for a moment and, when the task ends
    within it, sends the start with the result instead of on its own."""

    @model_validator(mode="after")
    def _error_matches_status(self) -> TaskResult:
        if (self.status == "failed") != (self.error is not None):
            raise ValueError("a failed result carries an error, any other result does not")
        return self


class TaskRetrying(Message):
    """An attempt of a task failed and it will run again: news for its submitter."""

    kind: Literal["task.retrying"] = "task.retrying"
    task_id: Identifier
    handler: HandlerName
    attempt: Annotated[int, Field(ge=1)]
    """The attempt that failed (1 = the first run)."""
    error: TaskFailure
    retry_in_s: NonNegative
    node_id: Identifier | None = None
    reply_to: Identifier


def cancelled_result(
    task: TaskSubmitted,
    *,
    attempts: int,
    node_id: str | None = None,
    demand: ResourceVector | None = None,
    logs: str | None = None,
) -> TaskResult:
    """The cancelled result of ``task``: one message id per task, as for every outcome."""
    return TaskResult(
        message_id=f"{task.task_id}.result",
        task_id=task.task_id,
        handler=task.handler,
        status="cancelled",
        node_id=node_id,
        attempts=attempts,
        demand=demand,
        complexity=task.complexity,
        data_size=task.data_size,
        reply_to=task.reply_to,
        submitted_at=task.submitted_at,
        logs=logs,
    )


MAX_CANCEL_IDS = 1000
"""Task ids one :class:`CancelTask` may name."""


CancelReason: TypeAlias = Literal["requested", "preempted"]


class CancelTask(Message):
    """Stop these tasks: a queued one never starts, a running one is stopped.

    A command broadcast on the events exchange to every balancer and
    executor, never through the database. Whoever holds a task answers with
    a :class:`CancelAnswer` and reports its ``cancelled`` :class:`TaskResult`;
    the others remember the ids (bounded), so a task that reaches them later
    is dropped as cancelled instead of started.
    """

    kind: Literal["task.cancel"] = "task.cancel"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: no reason, no node_id
    task_ids: Annotated[tuple[Identifier, ...], Field(min_length=1, max_length=MAX_CANCEL_IDS)]
    reply_to: Identifier
    """Client id: answers go to ``cancel.answer.<reply_to>``."""
    requested_at: Timestamp = Field(default_factory=now)
    reason: CancelReason = "requested"
    """``preempted``: the balancer takes borrowed capacity back. The executor
    of ``node_id`` stops the task and hands it back to the balancer, which
    runs it again; nobody answers, remembers the ids, or reports a result."""
    node_id: Identifier | None = None
    """For a preemption: the node the task was dispatched to (others ignore it)."""

    @model_validator(mode="after")
    def _preemption_names_its_node(self) -> CancelTask:
        if (self.reason == "preempted") != (self.node_id is not None):
            raise ValueError("a preemption names the node it stops tasks on, a cancel does not")
        return self


CancelVerdict: TypeAlias = Literal["cancelled", "finished"]


class CancelAnswer(Message):
    """A holder's answer to a :class:`CancelTask` for one task.

    ``cancelled``: the task was stopped (or dropped before it started) here,
    and its ``cancelled`` result is on its way to the submitter. ``finished``:
    it had already finished here (succeeded or failed); nothing changed.
    Services that never held the task stay silent.
    """

    kind: Literal["task.cancel.answer"] = "task.cancel.answer"
    request_id: Identifier
    """The :class:`CancelTask`'s message id."""
    task_id: Identifier
    verdict: CancelVerdict
    source: Identifier
    """The service that answered (``balancer`` or ``executor``)."""
    node_id: Identifier | None = None


MAX_PROGRESS_MESSAGE = 500


class TaskProgress(Message):
    """How far a running task has got, as its handler said (latest wins).

    The executor sends at most about two a second per task, the latest
    report each time, to the submitter (``progress.<reply_to>``) and to the
    task record.
    """

    kind: Literal["task.progress"] = "task.progress"
    task_id: Identifier
    fraction: Fraction
    message: Annotated[str, StringConstraints(max_length=MAX_PROGRESS_MESSAGE)] = ""
    reply_to: Identifier
    node_id: Identifier | None = None
    at: Timestamp = Field(default_factory=now)


def failed_result(
    task: TaskSubmitted,
    error_type: str,
    message: str,
    *,
    attempts: int,
    node_id: str | None = None,
    demand: ResourceVector | None = None,
    retryable: bool = False,
) -> TaskResult:
    """The failed result of ``task``, so that its caller never waits forever.

    Its message id is derived from the task id: whichever service reports the
    failure, consumers drop a second report as a repeat.
    """
    return TaskResult(
        message_id=f"{task.task_id}.result",
        task_id=task.task_id,
        handler=task.handler,
        status="failed",
        error=TaskFailure(error_type=error_type[:200], message=message[:4000], retryable=retryable),
        node_id=node_id,
        attempts=attempts,
        demand=demand,
        complexity=task.complexity,
        data_size=task.data_size,
        reply_to=task.reply_to,
        submitted_at=task.submitted_at,
    )


class NodeHeartbeat(Message):
    """An executor's periodic report of its capacity and real load."""

    kind: Literal["node.heartbeat"] = "node.heartbeat"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: no gpus
    node_id: Identifier
    seq: Count
    sent_at: Timestamp = Field(default_factory=now)
    started_at: Timestamp
    capacity: ResourceVector
    allocated: ResourceVector
    slots: Annotated[int, Field(ge=1, le=100_000)]
    running: Count
    free_slots: Count
    measured_cpu: Fraction
    measured_memory: Fraction
    gpus: tuple[GpuState, ...] = ()
    """Its GPU devices, in device order; the ``gpu`` of ``capacity`` is their count."""


MAX_HELD_TASKS = 100_000
"""Tasks one :class:`HeldWork` lists at most (no node holds more: its slots' bound)."""


class HeldWorkRequest(Message):
    """Asked by a balancer that became the active one, with tenants: every
    executor answers with a :class:`HeldWork` on ``events/held.<reply_to>``,
    so that admission starts from the usage the work already running holds."""

    kind: Literal["held.request"] = "held.request"
    reply_to: Identifier


class HeldWorkBarrier(Message):
    """What an executor asked by a :class:`HeldWorkRequest` puts into its own
    node queue, behind the work dispatched there before the question. The
    queue is FIFO: when the barrier comes out, that work has all been
    delivered to the executor (it holds it, or has finished it), so the
    answer it gives then (``complete``) names the work that waited in the
    queue beyond its prefetch too."""

    kind: Literal["held.barrier"] = "held.barrier"
    request_id: Identifier
    """The ``message_id`` of the request."""
    reply_to: Identifier


class HeldTask(Model):
    """One task an executor holds (running, or waiting there for a slot)."""

    task_id: Identifier
    tenant: TenantName = DEFAULT_TENANT
    priority: Priority = 0
    demand: ResourceVector


class HeldWork(Message):
    """An executor's answer to a :class:`HeldWorkRequest`: what it holds now.

    It answers twice: at once (what it holds when asked), and when its
    :class:`HeldWorkBarrier` comes out of its node queue (``complete``: the
    work queued for it before the question is in the answer too)."""

    kind: Literal["held.work"] = "held.work"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: one answer, no complete
    node_id: Identifier
    request_id: Identifier
    """The ``message_id`` of the request answered."""
    tasks: Annotated[tuple[HeldTask, ...], Field(max_length=MAX_HELD_TASKS)] = ()
    complete: bool = True
    """Whether it covers the work queued for the node before the question
    (the barrier's answer). A version-1 executor's only answer counts as
    complete, as it did."""


class NodeState(Model):
    """The monitor's view of one node inside a :class:`ClusterSnapshot`."""

    node_id: Identifier
    alive: bool
    on_probation: bool = False
    """Back after failing and not yet trusted: it runs what it has, takes nothing new."""
    capacity: ResourceVector
    allocated: ResourceVector
    slots: Annotated[int, Field(ge=1, le=100_000)]
    running: Count
    free_slots: Count
    measured_cpu: Fraction
    measured_memory: Fraction
    last_heartbeat_at: Timestamp
    gpus: tuple[GpuState, ...] = ()


class ClusterSnapshot(Message):
    """The monitor's live view of the cluster, published periodically and on change."""

    kind: Literal["cluster.snapshot"] = "cluster.snapshot"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: its nodes had no gpus
    monitor_id: Identifier
    seq: Count
    taken_at: Timestamp = Field(default_factory=now)
    nodes: tuple[NodeState, ...]
    backlog: Count = 0


AlertReason: TypeAlias = Literal[
    "node-down", "node-up", "overload", "backlog", "anomaly", "task-failed"
]


class Alert(Message):
    """Something an operator should know about."""

    kind: Literal["alert"] = "alert"
    reason: AlertReason
    severity: Literal["info", "warning", "critical"]
    detail: Annotated[str, StringConstraints(max_length=4000)]
    node_id: Identifier | None = None
    task_id: Identifier | None = None
    value: float | None = None
    raised_at: Timestamp = Field(default_factory=now)


class BalancerBacklog(Message):
    """The balancer's count of work it holds but has not dispatched yet."""

    kind: Literal["balancer.backlog"] = "balancer.backlog"
    pending: Count
    held: Count
    reported_at: Timestamp = Field(default_factory=now)


class DataChunk(Message):
    """One piece of a content-addressed upload (or of a fetch reply).

    Schema version 2: ``digest`` may be absent. A streamed upload does not
    know its blob's SHA-256 until it has read it all, so only its last chunk
    (``index == total_chunks - 1``) carries it; a chunk whose sender knew the
    digest up front (a resumed upload, a fetch reply) always carries it.
    """

    kind: Literal["data.chunk"] = "data.chunk"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: every chunk had the digest
    upload_id: Identifier
    digest: Digest | None = None
    index: Count
    total_chunks: Annotated[int, Field(ge=1, le=2**32)]
    total_size: Count = Field(description="The whole blob's size in bytes.")
    offset: Count = Field(description="Where this chunk starts in the blob, in bytes.")
    data: bytes
    reply_to: Identifier | None = None
    encoding: Literal["identity", "zstd"] = "identity"
    """How ``data`` holds the chunk's bytes: as they are, or as one zstd frame
    that declares its size (the data plane compresses chunks itself, fast)."""

    @model_validator(mode="after")
    def _index_in_range(self) -> DataChunk:
        if self.index >= self.total_chunks:
            raise ValueError("chunk index must be below total_chunks")
        if self.offset + len(self.data) > self.total_size:
            raise ValueError("chunk extends past the blob's total size")
        if self.digest is None and self.index == self.total_chunks - 1:
            raise ValueError("the last chunk of a blob carries its digest")
        return self


class CheckData(Message):
    """Ask the store what it holds of a blob before uploading it.

    Schema version 2: asked by ``digest`` (the blob's SHA-256) or, before the
    sender has hashed it all, by ``fingerprint`` (see
    :func:`boson_shared.transfer.chunks.fingerprint`) — exactly one of the two.
    Asked by fingerprint, the :class:`DataStatus` answer's ``digest`` is that
    fingerprint, its ``present`` says that a stored blob has it, and its
    ``received`` lists the chunks held of the upload; either one means "ask
    again by digest". Neither means the content is new to the store: stream it.
    """

    kind: Literal["data.check"] = "data.check"
    schema_version: ClassVar[int] = 2
    also_reads: ClassVar[frozenset[int]] = frozenset({1})  # v1: asked by digest only
    digest: Digest | None = None
    fingerprint: Digest | None = None
    upload_id: Identifier
    reply_to: Identifier

    @model_validator(mode="after")
    def _digest_or_fingerprint(self) -> CheckData:
        if (self.digest is None) == (self.fingerprint is None):
            raise ValueError("CheckData asks by digest or by fingerprint, exactly one")
        return self


class DataStatus(Message):
    """The store's answer to :class:`CheckData`: present, or which chunks it has."""

    kind: Literal["data.status"] = "data.status"
    digest: Digest
    upload_id: Identifier
    present: bool
    received: tuple[Count, ...] = ()


class FetchData(Message):
    """Ask the transfer service to stream a stored blob back as chunks."""

    kind: Literal["data.fetch"] = "data.fetch"
    request_id: Identifier
    digest: Digest
    reply_to: Identifier
    chunk_size: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = Field(
        default=1024 * 1024, description="Bytes per chunk of the reply."
    )


class DataStored(Message):
    """A blob is stored and its digest verified."""

    kind: Literal["data.stored"] = "data.stored"
    upload_id: Identifier
    digest: Digest
    size: Count = Field(description="The blob's size in bytes.")
    already_present: bool = False
    stored_at: Timestamp = Field(default_factory=now)


TaskStage: TypeAlias = Literal["submitted", "pending", "placed", "assigned", "started"]
"""The steps of a task's life before its outcome, in the order they happen."""

TaskState: TypeAlias = Literal[
    "submitted", "pending", "placed", "assigned", "started", "succeeded", "failed", "cancelled"
]
"""What the task record says of a task: its latest step, or its outcome."""

TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class TaskEvent(Message):
    """One step of a task's life, for the task record: never the task's data.

    The scheduler reports ``placed`` (``pending`` when no node fits yet), the
    balancer ``assigned``, the executor ``started``; the outcome is the
    :class:`TaskResult` itself. The placement carries the submission's
    inputs too (handler, submitter, tenant, priority, sizes, requests, limits): one event fewer
    per task. A task the scheduler turns away before placing it is reported
    ``submitted``, with the same inputs. Each service fills in only what it
    knows; every event carries the task's submission time, so a record row
    sorts right whichever event reaches the monitor first. A placement of a
    task submitted with ``explain`` carries the scheduler's explanation (the
    monitors keep the last few for the dashboard).
    """

    schema_version: ClassVar[int] = 4
    # v1: inputs only on "submitted"; v2: inputs without tenant, priority;
    # v3: no explanation
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    kind: Literal["task.event"] = "task.event"
    task_id: Identifier
    stage: TaskStage
    source: Identifier
    """The service that saw the step happen."""
    at: Timestamp = Field(default_factory=now)
    submitted_at: Timestamp
    handler: HandlerName | None = None
    submitter: Identifier | None = None
    complexity: NonNegative | None = None
    data_size: NonNegative | None = None
    input_bytes: Count | None = None
    """Size of the task's data (inline or by reference), not the data itself."""
    input_ref: Digest | None = None
    requests: ResourceRequest | None = None
    timeout_s: NonNegative | None = None
    max_retries: Count | None = None
    tenant: TenantName | None = None
    priority: Priority | None = None
    node_id: Identifier | None = None
    strategy: Annotated[str, StringConstraints(max_length=64)] | None = None
    demand: ResourceVector | None = None
    dispatch: Count | None = None
    attempt: Count | None = None
    explanation: PlacementExplanation | None = None


def task_event(
    task: TaskSubmitted,
    stage: TaskStage,
    source: str,
    *,
    message_id: str,
    inputs: bool = False,
    **fields: Any,
) -> TaskEvent:
    """The record event of ``task`` reaching ``stage``; it carries the task's
    inputs when ``inputs`` is set, and always for ``submitted``."""
    if stage == "submitted":
        fields.setdefault("at", task.submitted_at)
    if inputs or stage == "submitted":
        fields.update(
            handler=task.handler,
            submitter=task.reply_to,
            complexity=task.complexity,
            data_size=task.data_size,
            input_bytes=(
                len(task.data)
                if task.data is not None
                else (task.data_ref.size if task.data_ref is not None else 0)
            ),
            input_ref=task.data_ref.digest if task.data_ref is not None else None,
            requests=task.requests,
            timeout_s=task.timeout_s,
            max_retries=task.max_retries,
            tenant=task.tenant,
            priority=task.priority,
        )
    return TaskEvent(
        message_id=message_id,
        task_id=task.task_id,
        stage=stage,
        source=source,
        submitted_at=task.submitted_at,
        **fields,
    )


class TimelineEntry(Model):
    """One step in a task's recorded history."""

    stage: TaskState
    at: Timestamp
    node_id: Identifier | None = None
    source: Annotated[str, StringConstraints(max_length=64)] | None = None


class TaskRecord(Model):
    """What the record holds of one task (``Client.get``, ``boson task``)."""

    task_id: Identifier
    state: TaskState
    handler: HandlerName | None = None
    tenant: Annotated[str, StringConstraints(max_length=128)] | None = None
    priority: int | None = None
    submitter: Identifier | None = None
    complexity: NonNegative | None = None
    data_size: NonNegative | None = None
    input_bytes: Count | None = None
    input_ref: Digest | None = None
    node_id: Identifier | None = None
    strategy: Annotated[str, StringConstraints(max_length=64)] | None = None
    demand: ResourceVector | None = None
    attempts: Count = 0
    dispatches: Count = 0
    error: TaskFailure | None = None
    usage: TaskUsage | None = None
    output: Any = None
    output_ref: DataRef | None = None
    output_omitted: bool = False
    """The output was larger than the record keeps inline and had no reference."""
    submitted_at: Timestamp
    placed_at: Timestamp | None = None
    assigned_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    progress: Fraction | None = None
    """The handler's latest progress report (None: it made none)."""
    progress_message: Annotated[str, StringConstraints(max_length=MAX_PROGRESS_MESSAGE)] = ""
    progress_at: Timestamp | None = None
    logs: Annotated[str, StringConstraints(max_length=MAX_LOG_BYTES)] | None = None
    """What the handler printed or logged (its last 64 KiB; None: nothing captured)."""


RECORD_QUERY_MAX_LIMIT = 1000


class RecordQuery(Message):
    """Ask the monitors' task record: one task by id, or a filtered page of tasks;
    or (``subject="tenants"``) the tenants' samples over time, newest first,
    filtered by ``tenant``, ``since`` and ``until``.

    Answered with a :class:`RecordReply` on ``events/record.reply.<reply_to>``.
    """

    kind: Literal["record.query"] = "record.query"
    schema_version: ClassVar[int] = 4
    # v1: no cancelled state; v2: no tenant filter; v3: tasks only (no subject)
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    reply_to: Identifier
    subject: Literal["tasks", "tenants"] = "tasks"
    task_id: Identifier | None = None
    state: TaskState | None = None
    handler: HandlerName | None = None
    tenant: Annotated[str, StringConstraints(max_length=128)] | None = None
    node_id: Identifier | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    limit: Annotated[int, Field(ge=1, le=RECORD_QUERY_MAX_LIMIT)] = 50
    cursor: Annotated[str, StringConstraints(max_length=300)] | None = None
    """Where the previous page ended (its reply's ``next_cursor``)."""


RecordErrorCode: TypeAlias = Literal["not-found", "bad-query", "unavailable"]


class RecordReply(Message):
    """The record's answer to a :class:`RecordQuery`: records, or why not."""

    kind: Literal["record.reply"] = "record.reply"
    schema_version: ClassVar[int] = 4
    # v1: records without progress, logs; v2: without priority; v3: no tenant samples
    also_reads: ClassVar[frozenset[int]] = frozenset({1, 2, 3})
    query_id: Identifier
    records: tuple[TaskRecord, ...] = ()
    tenant_samples: Annotated[
        tuple[TenantSample, ...], Field(max_length=RECORD_QUERY_MAX_LIMIT)
    ] = ()
    next_cursor: Annotated[str, StringConstraints(max_length=300)] | None = None
    error: RecordErrorCode | None = None
    detail: Annotated[str, StringConstraints(max_length=4000)] = ""


class BlobsReferenced(Message):
    """The blobs the unexpired task records still refer to, as of ``as_of``.

    The monitor publishes it after each retention sweep; the transfer service
    deletes the blobs it holds that are in no such list and are older than
    its grace period. ``complete`` is false when the list was cut short: then
    nothing may be deleted on its strength.
    """

    kind: Literal["blobs.referenced"] = "blobs.referenced"
    as_of: Timestamp
    digests: tuple[Digest, ...]
    complete: bool = True


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
