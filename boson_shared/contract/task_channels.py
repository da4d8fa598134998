"""The channels of a task's journey: submitted, placed, run, answered, steered.

From a client's submission through the scheduler, the balancer and a node's
queue to its result; the data a task brings and fetches; the news its submitter
gets (retries, progress); and how it is steered once submitted (cancels and
their answers, the held work a new active balancer asks the executors for).
Part of the catalogue :func:`boson_shared.contract.channels.channels`.
"""

from __future__ import annotations

from boson_shared.contract.channel_types import (
    CLIENT_ID,
    INSTANCE_ID,
    NODE_ID,
    Channel,
    ChannelQueues,
    Consumer,
)
from boson_shared.contract.messages import (
    CancelAnswer,
    CancelTask,
    CheckData,
    DataChunk,
    DataStatus,
    DataStored,
    FetchData,
    HeldWork,
    HeldWorkBarrier,
    HeldWorkRequest,
    TaskAssigned,
    TaskPlaced,
    TaskProgress,
    TaskResult,
    TaskRetrying,
    TaskSubmitted,
)
from boson_shared.contract.topology import (
    RK_ALL_PROGRESS,
    RK_ALL_RESULTS,
    RK_CANCEL,
    RK_DATA_CHUNK,
    RK_DATA_REQUEST,
    RK_HELD_REQUEST,
    RK_PARKED,
    RK_PLACED,
    RK_SUBMIT,
    Names,
    rk_cancel_answer,
    rk_data_reply,
    rk_data_stored,
    rk_held_work,
    rk_node,
    rk_progress,
    rk_result,
    rk_retrying,
)


def task_channels(names: Names) -> tuple[Channel, ...]:
    """The routes of a task's journey in ``names``' namespace, in the order it travels."""
    work, events = names.work_exchange, names.events_exchange
    queues = ChannelQueues.of(names)
    return (
        Channel(
            "taskSubmit",
            work,
            "topic",
            RK_SUBMIT,
            (TaskSubmitted,),
            ("client",),
            (Consumer("scheduler", queues.submit, RK_SUBMIT),),
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
                Consumer("balancer", queues.placed, RK_PLACED),
                queues.subscriber("monitor", RK_PLACED),
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
            (Consumer("balancer", queues.placed, RK_PARKED),),
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
            (Consumer("executor", queues.node, rk_node(NODE_ID)),),
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
            (Consumer("transfer", queues.chunks, RK_DATA_CHUNK),),
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
            (Consumer("transfer", queues.requests, RK_DATA_REQUEST),),
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
                Consumer("client", queues.client, rk_result(CLIENT_ID)),
                Consumer("monitor", queues.record, RK_ALL_RESULTS),
                queues.subscriber("monitor", RK_ALL_RESULTS),
                queues.subscriber("scheduler", RK_ALL_RESULTS),
                queues.subscriber("balancer", RK_ALL_RESULTS),
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
            (Consumer("client", queues.client, rk_retrying(CLIENT_ID)),),
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
            (Consumer("client", queues.client, rk_data_reply(CLIENT_ID)),),
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
            (Consumer("client", queues.client, rk_data_stored(CLIENT_ID)),),
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
                queues.subscriber("balancer", RK_CANCEL),
                Consumer("executor", queues.own_queue, RK_CANCEL),
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
            (Consumer("executor", queues.own_queue, RK_HELD_REQUEST),),
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
            (queues.subscriber("balancer", rk_held_work(INSTANCE_ID)),),
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
            (Consumer("client", queues.client, rk_cancel_answer(CLIENT_ID)),),
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
                Consumer("client", queues.client, rk_progress(CLIENT_ID)),
                Consumer("monitor", queues.record, RK_ALL_PROGRESS),
            ),
            False,
            "A running task's latest progress (at most about two a second per task), "
            "to its submitter and the task record.",
        ),
    )


__all__ = ["task_channels"]
