"""The client SDK: submit tasks, await their results (``from boson import Client``).

The flow a user follows::

    async with await Client.connect("amqp://…", keys="…") as client:
        demand = client.resource_demand(complexity=100, data_size=1000)   # 110 units
        plan = await client.plan(demand)            # where it would go, nothing submitted
        handle = await client.submit("stats", data=csv_bytes)
        result = await handle.result(timeout=30)    # a TaskResult
        output = await client.execute("forecast", params={"values": [...]})
        async for report in handle.progress(): ...   # until its result arrives
        await handle.cancel()                       # or client.cancel(id, ...)

Results arrive on the client's own reply queue, named by its client id: a
quorum queue, so results waiting there survive the loss of a broker node.
The client deletes it on :meth:`Client.close` once nothing it submitted is
still out; with results pending it stays, so a client that reconnects with
the same ``client_id`` still gets them. Each task id's result is shown once,
whatever the broker redelivers (exactly-once at the client, docs/design.md#delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import msgpack
from pydantic import SecretStr, ValidationError

from boson.cluster_views import ClusterViews
from boson.dead_letters import DeadLetterWatch
from boson.records import DEFAULT_TIMEOUT_S, RecordReader, TaskPage
from boson.reply_queues import ReplyQueues
from boson.steering import (
    FIRST_ANSWER_S,
    CancelAnswers,
    CancelOutcome,
    ProgressFeed,
    chunks,
    decide,
    from_verdict,
    record_lookup,
    valid_ids,
)
from boson.task_handles import Plan, TaskHandle, TaskRequest, _Sent, unwrap
from boson_shared.bus.abc import Transport
from boson_shared.bus.factory import transport_from_url
from boson_shared.contract.channel_types import CLIENT_QUEUE_EXPIRES_MS
from boson_shared.contract.codec import Codec, EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    CancelAnswer,
    CancelTask,
    ClusterSnapshot,
    Message,
    TaskProgress,
    TaskRecord,
    TaskResult,
    TaskRetrying,
    TaskSubmitted,
    new_id,
)
from boson_shared.contract.tenants_report import TenantSample, TenantsReport
from boson_shared.contract.topology import RK_CANCEL, RK_SNAPSHOT, RK_SUBMIT, RK_TENANTS
from boson_shared.errors import (
    BrokerUnavailableError,
    InvalidTaskError,
)
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import BatchingPublisher, PublisherStats, Route
from boson_shared.scheduling.demand import DemandModel, LinearDemandModel
from boson_shared.settings import BosonSettings
from boson_shared.transfer.chunks import TransferOptions
from boson_shared.transfer.fetcher import Fetcher
from boson_shared.transfer.replies import DATA_REPLY_TYPES, DataReplies
from boson_shared.transfer.uploader import Uploader

logger = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 3
DEFAULT_COMPLEXITY = 1.0
"""A task that states no complexity still holds one unit, so it is counted."""


class Client(ClusterViews, ReplyQueues):
    """An asynchronous Boson client (see the module docstring)."""

    def __init__(
        self,
        settings: BosonSettings,
        transport: Transport,
        codec: Codec,
        *,
        client_id: str | None = None,
        demand_model: DemandModel | None = None,
        owns_transport: bool = True,
        transfer: TransferOptions | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id or f"client-{new_id()[:12]}"
        self.names = settings.names()
        self._transport = transport
        self._codec = codec
        self._owns_transport = owns_transport
        self._demand_model = demand_model or LinearDemandModel()
        self._publisher = BatchingPublisher(
            transport,
            codec,
            max_items=settings.batch_max_items,
            max_bytes=settings.batch_max_bytes,
            max_in_flight=settings.batch_max_in_flight,
        )
        self._waiters: dict[str, asyncio.Future[TaskResult]] = {}
        self._sent: dict[str, _Sent] = {}
        """Tasks awaiting a result, by the message id they travelled under."""
        self._message_of: dict[str, str] = {}
        self._results: dict[str, TaskResult] = {}
        self._arrivals: list[asyncio.Queue[TaskResult]] = []
        self._shown = SeenIds(settings.dedup_capacity)
        self._answers = CancelAnswers()
        self._progress = ProgressFeed(lambda task_id: task_id in self._shown)
        self._loop: ConsumeLoop[Message] | None = None
        self._dead_letters = DeadLetterWatch(transport, self.names, self.client_id, self._on_dead)
        self.duplicates_dropped = 0
        self.on_retrying: Callable[[TaskRetrying], None] | None = None
        """Called as each failed attempt of this client's tasks is retried."""
        # Data above the inline threshold travels through the transfer
        # service; its replies arrive on this client's own queue.
        self.transfer = transfer or TransferOptions()
        self.replies = DataReplies()
        self.uploader = Uploader(
            transport,
            codec,
            self._publisher,
            self.names,
            self.replies,
            self.client_id,
            self.transfer,
        )
        self.fetcher = Fetcher(
            self._publisher, self.names, self.replies, self.client_id, self.transfer
        )

    @classmethod
    async def connect(
        cls,
        broker_url: str | None = None,
        *,
        keys: str | None = None,
        settings: BosonSettings | None = None,
        client_id: str | None = None,
    ) -> Client:
        """Connect to RabbitMQ (``amqp://…``) with the given keyring spec."""
        overrides: dict[str, Any] = {}
        # model_copy does not validate: wrap the secrets as the settings would.
        if broker_url is not None:
            overrides["broker_url"] = SecretStr(broker_url)
        if keys is not None:
            overrides["keys"] = SecretStr(keys)
        settings = (settings or BosonSettings()).model_copy(update=overrides)
        url = settings.broker_url.get_secret_value() if settings.broker_url else None
        transport = transport_from_url(url, connection_name="boson-client")
        keyring = Keyring.from_settings(settings) if settings.keys else Keyring.ephemeral()
        client = cls(
            settings,
            transport,
            EnvelopeCodec.from_settings(settings, keyring=keyring),
            client_id=client_id,
        )
        await client.start()
        return client

    async def start(self) -> None:
        if not self._transport.is_connected:
            await self._transport.connect()
        await self._transport.declare(
            self.names.submit() + self.names.client(self.client_id, CLIENT_QUEUE_EXPIRES_MS)
        )
        self._loop = ConsumeLoop(
            ConsumerSpec(
                queue=self.names.client_queue(self.client_id),
                accepts=(TaskResult, TaskRetrying, TaskProgress, CancelAnswer, *DATA_REPLY_TYPES),
                handler=self._on_message,
                prefetch=1000,
            ),
            transport=self._transport,
            codec=self._codec,
            publisher=self._publisher,
            names=self.names,
            seen=SeenIds(self.settings.dedup_capacity),
        )
        await self._loop.start()
        await self._dead_letters.start()

    @property
    def publisher_stats(self) -> PublisherStats:
        """Items and envelopes this client published (how well its submissions batch)."""
        return self._publisher.stats

    async def close(self) -> None:
        """Stop; delete the reply queue too when no submitted task is still out.

        The reply queue never expires (a quorum queue's expiry is not
        something Boson relies on), so the client that made it removes it.
        """
        await self._dead_letters.close()
        if self._loop is not None:
            await self._loop.stop()
            await self._loop.drain(5.0)
        await self._publisher.close()
        if self.pending() == 0 and self._transport.is_connected:
            try:
                await self.delete_queues()
            except BrokerUnavailableError as error:
                logger.warning("could not delete the reply queue of %s: %s", self.client_id, error)
        for future in self._waiters.values():
            if not future.done():
                future.cancel()
        self._progress.close()
        if self._owns_transport:
            await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- demand and planning ----------------------------------------------

    async def snapshot(self, timeout: float = 10.0) -> ClusterSnapshot:
        """The next cluster snapshot the monitor publishes."""
        snapshot = await self._next_event(RK_SNAPSHOT, ClusterSnapshot, "plan", timeout)
        assert isinstance(snapshot, ClusterSnapshot)
        return snapshot

    async def tenants(self, timeout: float = 10.0) -> TenantsReport:
        """The next report of how the tenants share the pool.

        The active balancer publishes one every
        ``BOSON_TENANTS_REPORT_INTERVAL_S`` (the monitor takes the same
        reports for its gauges and dashboard); ``TimeoutError`` if none comes
        within ``timeout``.
        """
        report = await self._next_event(RK_TENANTS, TenantsReport, "tenants", timeout)
        assert isinstance(report, TenantsReport)
        return report

    # -- submitting --------------------------------------------------------

    def build_task(self, request: TaskRequest) -> TaskSubmitted:
        data_size = request.data_size
        if data_size is None:
            data_size = len(request.data) / 1024 if request.data else 0.0
        try:
            return TaskSubmitted(
                task_id=request.task_id or new_id(),
                handler=request.handler,
                params=dict(request.params),
                data=request.data,
                complexity=DEFAULT_COMPLEXITY if request.complexity is None else request.complexity,
                data_size=data_size,
                requests=request.requests,
                timeout_s=request.timeout_s,
                max_retries=(
                    DEFAULT_MAX_RETRIES if request.max_retries is None else request.max_retries
                ),
                retry_errors=request.max_retries is not None,
                reply_to=self.client_id,
                explain=request.explain,
                tenant=request.tenant,
                priority=request.priority,
            )
        except ValidationError as e:
            # One typed line (no input values: params may be large or private).
            problems = e.errors(include_input=False, include_url=False, include_context=False)
            text = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems[:5])
            raise InvalidTaskError(f"task refused before publishing: {text}") from e

    async def submit(self, handler: str, data: bytes | None = None, **options: Any) -> TaskHandle:
        """Submit one task; returns once the broker has it (confirmed)."""
        (handle,) = await self.submit_many([TaskRequest(handler, data, **options)])
        return handle

    async def submit_many(self, requests: Sequence[TaskRequest]) -> list[TaskHandle]:
        """Submit many tasks at once; they batch on the wire."""
        tasks = [await self._prepare(request) for request in requests]
        loop = asyncio.get_running_loop()
        for task in tasks:
            if task.task_id in self._shown:
                # Sent again after a publish failed that did reach the broker:
                # its result is already here, and no waiter must wait for another.
                continue
            self._waiters.setdefault(task.task_id, loop.create_future())
            self._sent[task.message_id] = _Sent(task.task_id, task.handler, task.submitted_at)
            self._message_of[task.task_id] = task.message_id
        route = Route(self.names.work_exchange, RK_SUBMIT, mandatory=True)
        await self._publisher.publish_many([(route, task) for task in tasks])
        return [TaskHandle(self, task) for task in tasks]

    async def _prepare(self, request: TaskRequest) -> TaskSubmitted:
        """The task to publish; data above the inline threshold is uploaded first."""
        task = self.build_task(request)
        if request.data is None or len(request.data) <= self.transfer.inline_max_bytes:
            return task
        ref = await self.uploader.upload(request.data)
        return task.model_copy(update={"data": None, "data_ref": ref})

    async def execute(
        self,
        handler: str,
        data: bytes | None = None,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> Any:
        """Submit and wait: the task's output, or :class:`TaskFailedError`."""
        handle = await self.submit(handler, data, **options)
        return await handle.output(timeout)

    async def result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The result of ``task_id`` (submitted by this client id)."""
        async with asyncio.timeout(timeout):
            if task_id in self._results:
                result = self._results[task_id]
            else:
                future = self._waiters.get(task_id)
                if future is None:
                    future = self._waiters[task_id] = asyncio.get_running_loop().create_future()
                result = await asyncio.shield(future)
            if result.output_ref is None or result.output is not None:
                return result
            # A large output travelled through the transfer service: fetch it
            # so the caller sees it as if it had come inline.
            blob = await self.fetcher.fetch(result.output_ref)
            resolved = result.model_copy(update={"output": _unpack_output(blob)})
            if task_id in self._results:
                self._results[task_id] = resolved
            return resolved

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (for ``boson status``)."""
        return await self._transport.queue_depth(queue)

    def pending(self) -> int:
        """Tasks submitted by this client whose results have not arrived."""
        return sum(1 for future in self._waiters.values() if not future.done())

    async def _on_message(self, message: Message) -> Sequence[Emit]:
        if isinstance(message, TaskResult):
            return await self._on_result(message)
        if isinstance(message, TaskRetrying):
            if self.on_retrying is not None and message.task_id not in self._shown:
                self.on_retrying(message)
            return []
        if isinstance(message, TaskProgress):
            self._progress.on_progress(message)
            return []
        if isinstance(message, CancelAnswer):
            self._answers.on_answer(message)
            return []
        return await self.replies.handle(message)

    async def _on_result(self, result: TaskResult) -> Sequence[Emit]:
        if result.task_id in self._shown:
            self.duplicates_dropped += 1
            return []
        self._shown.add(result.task_id)
        self._sent.pop(self._message_of.pop(result.task_id, ""), None)
        self._results[result.task_id] = result
        future = self._waiters.pop(result.task_id, None)
        if future is not None and not future.done():
            future.set_result(result)
        self._progress.on_result(result.task_id)
        for arrivals in self._arrivals:
            arrivals.put_nowait(result)
        return []

    # -- steering ----------------------------------------------------------

    async def cancel(
        self, *task_ids: str, timeout: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, CancelOutcome]:
        """Cancel tasks by id (any submitter's): per id ``cancelled``,
        ``already-finished`` or ``unknown`` (see :mod:`boson.steering`).

        A queued task never starts; a running one is stopped (a process-mode
        handler killed with what it started; a thread-mode or coroutine handler
        sees ``task.cancelled``; a plain inline function's result is
        discarded). Its submitter receives one ``cancelled`` result. Bounded
        by ``timeout`` per batch of ids.
        """
        good, bad = valid_ids(task_ids)
        outcomes: dict[str, CancelOutcome] = dict.fromkeys(bad, "unknown")
        pending: list[str] = []
        for task_id in good:
            known = self._arrived_outcome(task_id)
            if known is not None:
                outcomes[task_id] = known
            else:
                pending.append(task_id)
        for batch in chunks(pending):
            outcomes.update(await self._cancel_batch(batch, timeout))
        return {task_id: outcomes[task_id] for task_id in dict.fromkeys(task_ids)}

    async def _cancel_batch(self, task_ids: list[str], timeout: float) -> dict[str, CancelOutcome]:
        command = CancelTask(task_ids=tuple(task_ids), reply_to=self.client_id)
        answers = self._answers.expect(command.message_id, task_ids)
        own = {t for t in task_ids if t in self._waiters}
        try:
            route = Route(self.names.events_exchange, RK_CANCEL)
            await self._publisher.publish(route, command)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(asyncio.shield(f) for f in answers.values())),
                    min(timeout, FIRST_ANSWER_S),
                )
            if all(f.done() for f in answers.values()):
                return {t: from_verdict(f.result()) for t, f in answers.items()}
            async with self.records() as reader:
                lookup = record_lookup(reader)
                decided = await asyncio.gather(
                    *(
                        decide(
                            t,
                            f,
                            lookup,
                            own=t in own,
                            timeout=timeout,
                            arrived=functools.partial(self._arrived_outcome, t),
                        )
                        for t, f in answers.items()
                    )
                )
            return dict(zip(answers, decided, strict=True))
        finally:
            self._answers.done_with(command.message_id)

    def _arrived_outcome(self, task_id: str) -> CancelOutcome | None:
        result = self._results.get(task_id)
        if result is None:
            return None
        return "cancelled" if result.status == "cancelled" else "already-finished"

    def progress(self, task_id: str) -> AsyncIterator[TaskProgress]:
        """Progress reports of a task this client submitted, until its result arrives."""
        return self._progress.follow(task_id)

    def latest_progress(self, task_id: str) -> TaskProgress | None:
        """The latest progress report of one of this client's running tasks, if any."""
        return self._progress.latest.get(task_id)

    # -- the task record ---------------------------------------------------

    def records(self) -> RecordReader:
        """A reader of the task record (``async with client.records() as r: …``)."""
        return RecordReader(self._transport, self._codec, self.names, self._publisher)

    async def get(self, task_id: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> TaskRecord:
        """Any task's record by id: state, timeline and result (whoever submitted it)."""
        async with self.records() as reader:
            return await reader.get(task_id, timeout=timeout)

    async def tasks(self, **filters: Any) -> TaskPage:
        """A page of task records; filters as :meth:`RecordReader.tasks`."""
        async with self.records() as reader:
            return await reader.tasks(**filters)

    async def tenant_history(self, **filters: Any) -> tuple[TenantSample, ...]:
        """The tenants' samples in the record; filters as :meth:`RecordReader.tenant_history`."""
        async with self.records() as reader:
            return await reader.tenant_history(**filters)


def _unpack_output(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


__all__ = ["Client", "Plan", "TaskHandle", "TaskRequest", "unwrap"]
