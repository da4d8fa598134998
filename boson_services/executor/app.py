"""Wiring of the executor service: its node queue, heartbeats and handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import psutil

from boson_services.executor.capture import secrets_of
from boson_services.executor.census import NodeMessage, NodeQueue, on_held_request
from boson_services.executor.gpus import GpuBook, Nvml, resolve_gpus
from boson_services.executor.handlers import ExecutorHandlers
from boson_services.executor.node_state import DataFetcher, DataUploader
from boson_services.executor.pool import TaskRunner
from boson_services.executor.settings import ExecutorSettings
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import (
    CancelTask,
    HeldWorkBarrier,
    HeldWorkRequest,
    Message,
    NodeHeartbeat,
    ResourceVector,
    TaskAssigned,
    TaskEvent,
)
from boson_shared.contract.topology import RK_RECORD_EVENT, Topology, rk_heartbeat
from boson_shared.handlers import discover
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit
from boson_shared.runtime.publisher import Route
from boson_shared.runtime.service import Periodic, Service
from boson_shared.transfer.chunks import TransferOptions
from boson_shared.transfer.fetcher import Fetcher
from boson_shared.transfer.replies import DATA_REPLY_TYPES, DataReplies
from boson_shared.transfer.uploader import Uploader

BUILTIN_MODULE = "boson_services.executor.builtins"

logger = logging.getLogger(__name__)


class ExecutorService(Service):
    name = "executor"

    def __init__(
        self,
        settings: ExecutorSettings,
        transport: Transport,
        codec: Codec,
        *,
        fetch: DataFetcher | None = None,
        upload: DataUploader | None = None,
    ) -> None:
        super().__init__(settings, transport, codec)
        # The data plane answers on this node's own reply queue.
        self.replies = DataReplies()
        transfer = TransferOptions(inline_max_bytes=settings.max_inline_result_bytes)
        self.fetcher = Fetcher(self.publisher, self.names, self.replies, settings.node_id, transfer)
        self.uploader = Uploader(
            transport, codec, self.publisher, self.names, self.replies, settings.node_id, transfer
        )
        self.executor_settings = settings
        self.node_id = settings.node_id
        self.nvml = Nvml() if settings.gpu_discovery and not settings.gpu_devices else None
        gpus, said = resolve_gpus(settings.gpu_devices, settings.gpu, self.nvml)
        logger.info("%s: %s", settings.node_id, said)
        self.gpu_book = GpuBook(gpus)
        gpu_capacity = float(len(gpus)) if gpus else settings.gpu
        self.capacity = ResourceVector(cpu=settings.cpu, memory=settings.memory, gpu=gpu_capacity)
        self.runner = TaskRunner(settings.slots, start_method=settings.worker_start_method)
        self.handlers = ExecutorHandlers(
            node_id=settings.node_id,
            slots=settings.slots,
            registry=discover([BUILTIN_MODULE, *settings.handler_modules]),
            runner=self.runner,
            names=self.names,
            max_inline_result_bytes=settings.max_inline_result_bytes,
            completed_memory=settings.completed_memory,
            fetch=fetch if fetch is not None else self.fetcher.fetch,
            upload=upload if upload is not None else self.uploader.upload,
            report=self.report if settings.record else None,
            start_hold_s=settings.record_start_hold_ms / 1000,
            gpus=self.gpu_book,
            publish=self.publisher.publish,
            secrets=secrets_of(
                secret.get_secret_value() if secret is not None else None
                for secret in (settings.keys, settings.broker_url, settings.database_url)
            ),
            on_freed=self.heartbeat_soon,
        )
        self.node_queue = NodeQueue(self.handlers)
        self._soon: set[asyncio.Task[None]] = set()
        self.started_at = time.time()
        self.heartbeat_seq = 0
        self._process = psutil.Process()
        # The first cpu_percent() call only sets the baseline.
        psutil.cpu_percent(interval=None)

    def topology(self) -> Topology:
        expires_ms = int(self.executor_settings.node_queue_expires_s * 1000)
        topology = (
            self.names.node(self.node_id, expires_ms)
            + self.names.reply(self.node_id)
            + self.names.cancels(self.names.client_queue(self.node_id))
            + self.names.held_requests(self.names.client_queue(self.node_id))
        )
        return topology + self.names.record() if self.settings.record else topology

    async def report(self, event: TaskEvent) -> None:
        """Publish a lifecycle event to the task record (confirmed)."""
        await self.publisher.publish(Route(self.names.events_exchange, RK_RECORD_EVENT), event)

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return [
            ConsumerSpec[NodeMessage](
                # Its tasks, and the barriers of takeover censuses (census.py).
                queue=self.names.node_queue(self.node_id),
                accepts=(TaskAssigned, HeldWorkBarrier),
                handler=self.node_queue.on_message,
                prefetch=self.executor_settings.slots * self.executor_settings.prefetch_factor,
                on_exhausted=self.node_queue.on_exhausted,
                on_retry=self.node_queue.on_retry,
                max_attempts=self.node_queue.max_attempts,
            ),
            ConsumerSpec(
                # The node's own queue: data-plane replies, every cancel command,
                # and the balancers' questions of what it holds.
                queue=self.names.client_queue(self.node_id),
                accepts=(*DATA_REPLY_TYPES, CancelTask, HeldWorkRequest),
                handler=self.on_own_message,
                prefetch=64,
            ),
        ]

    async def on_own_message(self, message: Message) -> Sequence[Emit]:
        if isinstance(message, CancelTask):
            return await self.handlers.on_cancel(message)
        if isinstance(message, HeldWorkRequest):
            return on_held_request(self.handlers, message)
        return await self.replies.handle(message)

    def heartbeat_soon(self) -> None:
        """Heartbeat now, not at the next tick: a cancel has freed a slot."""
        task = asyncio.ensure_future(self._heartbeat_quietly())
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    async def _heartbeat_quietly(self) -> None:
        try:
            await self.heartbeat()
        except Exception as error:  # the periodic heartbeat follows anyway
            logger.debug("early heartbeat not sent: %s", error)

    def background(self) -> Sequence[tuple[float, Periodic]]:
        return [(self.executor_settings.heartbeat_interval_s, self.heartbeat)]

    def make_heartbeat(self) -> NodeHeartbeat:
        self.heartbeat_seq += 1
        slots = self.executor_settings.slots
        running = self.handlers.running
        return NodeHeartbeat(
            node_id=self.node_id,
            seq=self.heartbeat_seq,
            started_at=self.started_at,
            capacity=self.capacity,
            allocated=self.handlers.allocated(),
            slots=slots,
            running=running,
            free_slots=max(0, slots - len(self.handlers.active)),
            measured_cpu=min(1.0, psutil.cpu_percent(interval=None) / 100.0),
            measured_memory=min(1.0, psutil.virtual_memory().percent / 100.0),
            gpus=self.gpu_book.states(
                self.nvml.usage(self.gpu_book.gpus) if self.nvml is not None else None
            ),
        )

    async def heartbeat(self) -> None:
        if self.stopping:
            return  # a draining node must not look available
        route = Route(self.names.events_exchange, rk_heartbeat(self.node_id))
        await self.publisher.publish(route, self.make_heartbeat())

    def health(self) -> dict[str, Any]:
        body = super().health()
        body.update(
            node_id=self.node_id,
            running=self.handlers.running,
            held=len(self.handlers.active),
            results=dict(self.handlers.results),
            cancels={
                "stopped": self.handlers.cancels.stopped,
                "dropped": self.handlers.cancels.dropped,
                "preempted": self.handlers.cancels.preempted,
            },
        )
        return body

    async def on_stop(self) -> None:
        await self.handlers.progress.close()
        await self.runner.close()


def create(settings: ExecutorSettings, transport: Transport, codec: Codec) -> ExecutorService:
    return ExecutorService(settings, transport, codec)


__all__ = ["BUILTIN_MODULE", "ExecutorService", "create"]
