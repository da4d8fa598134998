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

This module is the SDK's public face: users import from it
(``from boson.client import Client, TaskRequest, ...``), and ``boson``
re-exports it. :class:`Client` keeps its life cycle here (connect, start,
close), submitting and the task record's questions; the rest of it lives in
modules of one idea each, mixed in: :mod:`boson.task_building` (what a
request becomes), :mod:`boson.reply_queues` (results awaited and shown once,
what else arrives), :mod:`boson.steering` (cancel and progress),
:mod:`boson.cluster_views` (snapshots, demand, plans). What a user submits
and holds is in :mod:`boson.task_handles`; all of it is re-exported here as
it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from pydantic import SecretStr

from boson.cluster_views import ClusterViews
from boson.dead_letters import DeadLetterWatch
from boson.records import DEFAULT_TIMEOUT_S, TaskPage
from boson.reply_queues import ReplyQueues
from boson.steering import CancelAnswers, ProgressFeed, TaskSteering
from boson.task_building import DEFAULT_COMPLEXITY, DEFAULT_MAX_RETRIES, TaskBuilding
from boson.task_handles import Plan, TaskHandle, TaskRequest, _Sent, unwrap
from boson_shared.bus.abc import Transport
from boson_shared.bus.factory import transport_from_url
from boson_shared.contract.channel_types import CLIENT_QUEUE_EXPIRES_MS
from boson_shared.contract.codec import Codec, EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    CancelAnswer,
    Message,
    TaskProgress,
    TaskRecord,
    TaskResult,
    TaskRetrying,
    new_id,
)
from boson_shared.contract.tenants_report import TenantSample
from boson_shared.contract.topology import RK_SUBMIT
from boson_shared.errors import BrokerUnavailableError
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec
from boson_shared.runtime.dedup import SeenIds
from boson_shared.runtime.publisher import BatchingPublisher, PublisherStats, Route
from boson_shared.scheduling.demand import DemandModel, LinearDemandModel
from boson_shared.settings import BosonSettings
from boson_shared.transfer.chunks import TransferOptions
from boson_shared.transfer.fetcher import Fetcher
from boson_shared.transfer.replies import DATA_REPLY_TYPES, DataReplies
from boson_shared.transfer.uploader import Uploader

logger = logging.getLogger(__name__)


class Client(ClusterViews, ReplyQueues, TaskSteering, TaskBuilding):
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

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (for ``boson status``)."""
        return await self._transport.queue_depth(queue)

    # -- the task record ---------------------------------------------------

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


__all__ = [
    "DEFAULT_COMPLEXITY",
    "DEFAULT_MAX_RETRIES",
    "Client",
    "Plan",
    "TaskHandle",
    "TaskRequest",
    "unwrap",
]
