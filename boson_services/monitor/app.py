"""Wiring of the monitor service: its queue, its loops, its HTTP routes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.queue_poll import MissingQueues
from boson_services.monitor.record import RecordKeeper
from boson_services.monitor.reply_queues import AbandonedReplyQueues
from boson_services.monitor.settings import MonitorSettings
from boson_services.monitor.tenant_history import TenantHistory
from boson_services.monitor.view import ClusterView
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import (
    BalancerBacklog,
    Message,
    NodeHeartbeat,
    RecordQuery,
    TaskEvent,
    TaskPlaced,
    TaskProgress,
    TaskResult,
)
from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.contract.topology import (
    RK_ALL_HEARTBEATS,
    RK_ALL_RESULTS,
    RK_BACKLOG,
    RK_PLACED,
    RK_TENANTS,
    BindingSpec,
    Topology,
)
from boson_shared.errors import ConfigError
from boson_shared.record.location import default_database_url
from boson_shared.record.store import RecordStore
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import ConsumerSpec, Emit
from boson_shared.runtime.health import Response
from boson_shared.runtime.service import Periodic, Service
from boson_shared.scheduling.probation import Probation

if TYPE_CHECKING:
    from boson_services.monitor.dashboard.server import Dashboard

logger = logging.getLogger(__name__)


class MonitorService(Service):
    name = "monitor"

    def __init__(self, settings: MonitorSettings, transport: Transport, codec: Codec) -> None:
        super().__init__(settings, transport, codec)
        self.monitor_settings = settings
        self.metrics = MonitorMetrics()
        self.handlers = MonitorHandlers(
            ClusterView(
                down_after_s=settings.down_after_s,
                overload_threshold=settings.overload_threshold,
                overload_sustain_s=settings.overload_sustain_s,
                probation=Probation.lasting(settings.probation_s),
                # A sweep late by more than a heartbeat interval: a heartbeat
                # may have waited unread through the pause.
                pause_limit_s=settings.snapshot_interval_s + settings.heartbeat_interval_s,
                sweep_interval_s=settings.snapshot_interval_s,
            ),
            self.metrics,
            self.names,
            settings.instance_id,
            backlog_alert_threshold=settings.backlog_alert_threshold,
        )
        # Heartbeats sent while our connection is down are never heard (our
        # queue goes with the connection): that silence is not the nodes'.
        transport.watch_connection(self.handlers.on_connection)
        self.queue = self.names.subscriber_queue(self.name, settings.instance_id)
        self.reply_queues = AbandonedReplyQueues(
            transport, self.names, settings.abandoned_reply_queue_s, clock=time.monotonic
        )
        self.missing_queues = MissingQueues(settings.queue_poll_interval_s)
        self.record: RecordKeeper | None = None
        self.tenant_history: TenantHistory | None = None
        self._last_sweep = 0.0
        record_url: str | None = None
        if settings.record:
            url = settings.database_url
            record_url = url.get_secret_value() if url is not None else default_database_url()
            store = RecordStore.open(
                record_url,
                ttl_s=settings.result_ttl,
                inline_max_bytes=settings.record_inline_max_bytes,
            )
            self.record = RecordKeeper(
                store,
                self.names,
                batch_max_items=settings.record_batch_max_items,
                batch_linger_s=settings.record_batch_linger_ms / 1000,
                referenced_max=settings.referenced_blobs_max,
                clock=time.time,
                on_recorded=self.on_recorded,
            )
            self.record.on_outage = self.pause_record
            self.tenant_history = TenantHistory(store, slot_s=settings.tenants_sample_interval_s)
        self.dashboard = _dashboard(settings, self.handlers, record_url, self)

    def topology(self) -> Topology:
        expires_ms = int(self.monitor_settings.subscriber_expires_s * 1000)
        keys = [RK_ALL_HEARTBEATS, RK_BACKLOG, RK_TENANTS]
        if self.record is None:
            # Without the record, copies of placements (they go to the work
            # exchange) and results to our own queue count them; with it,
            # the record's events do (``on_recorded``).
            own = self.names.subscriber(
                self.name, self.settings.instance_id, [*keys, RK_ALL_RESULTS], expires_ms
            )
            placed = BindingSpec(self.queue, self.names.work_exchange, RK_PLACED)
            return own + Topology(bindings=(placed,))
        own = self.names.subscriber(self.name, self.settings.instance_id, keys, expires_ms)
        return own + self.names.record() + self.names.record_queries()

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        own = ConsumerSpec(
            queue=self.queue,
            accepts=(NodeHeartbeat, TaskPlaced, TaskResult, BalancerBacklog, TenantsReport),
            handler=self.on_message,
            prefetch=self.settings.prefetch,
            items_in_turn=True,
            # Heartbeats and periodic reports, each superseded by the next, on a queue
            # exclusive to this connection (gone with it): an ack would protect
            # nothing, and acking 1,000 heartbeats a second was a tenth of the
            # monitor's time. The record's queues keep their acks.
            no_ack=True,
        )
        if self.record is not None and self.record.ready:
            return [own, *self.record_consumers(self.record)]
        return [own]

    async def on_message(self, message: Message) -> Sequence[Emit]:
        if self.dashboard is not None:
            # Its thread shares our GIL: through a burst of messages it gets turns.
            self.dashboard.gil_turns.turn()
        if isinstance(message, TaskPlaced | TaskResult) and self.record is not None:
            # Left by a binding of a monitor that ran without the record
            # under this instance id: the record's events count these.
            return []
        if isinstance(message, TaskResult):
            self.reply_queues.seen(message.reply_to)
        return await self.handlers.handle(message)

    def on_recorded(self, events: Sequence[TaskEvent | TaskResult]) -> None:
        """Placements and results the record stored first: metrics, explanations,
        and the reply queues results went to."""
        for event in events:
            if isinstance(event, TaskResult):
                self.reply_queues.seen(event.reply_to)
        self.handlers.on_recorded(events)

    async def sweep_reply_queues(self) -> None:
        await self.reply_queues.sweep()

    async def on_start(self) -> None:
        """Start the dashboard; open the record before consuming (a database
        away now is retried later)."""
        if self.dashboard is not None:
            await self.dashboard.start()
        if self.record is None:
            return
        try:
            async with asyncio.timeout(self.monitor_settings.record_start_timeout_s):
                await self.record.prepare()
        except TimeoutError:
            logger.warning("task record database slow to answer; retrying in the background")

    @property
    def record_loops(self) -> list[ConsumeLoop[Any]]:
        queues = (self.names.record_queue, self.names.record_queries_queue)
        return [loop for loop in self.loops if loop.spec.queue in queues]

    def record_consumers(self, record: RecordKeeper) -> list[ConsumerSpec[Any]]:
        """The record's consumers, started once its database answers."""
        return [
            ConsumerSpec(
                queue=self.names.record_queue,
                accepts=(TaskEvent, TaskResult, TaskProgress),
                handler=record.on_event,
                batch_handler=record.on_events,
                prefetch=self.monitor_settings.record_prefetch,
                # The monitor's own queue sees the same results (same ids):
                # the store's event keys make repeats harmless instead.
                dedup=False,
            ),
            ConsumerSpec(
                queue=self.names.record_queries_queue,
                accepts=(RecordQuery,),
                handler=record.on_query,
                prefetch=16,
            ),
        ]

    def background(self) -> Sequence[tuple[float, Periodic]]:
        loops: list[tuple[float, Periodic]] = [
            (self.monitor_settings.snapshot_interval_s, self.tick),
            (self.monitor_settings.queue_poll_interval_s, self.poll_queues),
            (self.monitor_settings.reply_queue_sweep_interval_s, self.sweep_reply_queues),
        ]
        if self.record is not None:
            loops.append((self.monitor_settings.record_check_interval_s, self.keep_record))
            loops.append((self.monitor_settings.record_check_interval_s, self.sample_tenants))
        return loops

    async def keep_record(self) -> None:
        """Start (or resume) the record once its database answers; run retention."""
        record = self.record
        if record is None or self.stopping:
            return
        if record.outage:
            # Paused by a failed write: hand its deliveries back, then resume.
            for loop in self.record_loops:
                if loop.spec.queue == self.names.record_queue:
                    await self.remove_consumer(loop)
        running = {loop.spec.queue for loop in self.record_loops}
        wanted = [s for s in self.record_consumers(record) if s.queue not in running]
        if wanted:
            if not await record.prepare():
                return
            for spec in wanted:
                await self.add_consumer(spec)
            logger.info("task record consuming")
        now = time.monotonic()
        if now - self._last_sweep >= self.monitor_settings.retention_interval_s:
            self._last_sweep = now
            emits = await record.sweep()
            await self.publisher.publish_many([(e.route, e.message) for e in emits])

    async def sample_tenants(self) -> None:
        """Offer the latest tenants report to the record's history (off the consumer:
        a slow database delays only this loop)."""
        report = self.handlers.view.tenants()
        if report is None or self.tenant_history is None or self.record is None:
            return
        if self.record.ready:
            await self.tenant_history.observe(report)

    async def pause_record(self) -> None:
        """Stop taking record events (the database is away); they wait in the queue.

        Queries are still answered, with "unavailable"."""
        for loop in self.record_loops:
            if loop.spec.queue == self.names.record_queue:
                await loop.stop()

    async def on_stop(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.stop()
        if self.record is not None:
            await self.record.commits.close()
            await self.record.store.close()

    async def tick(self) -> None:
        emits = self.handlers.tick()
        if self.dashboard is not None:
            self.dashboard.capture()
        await self.publisher.publish_many([(e.route, e.message) for e in emits])

    async def poll_queues(self) -> None:
        queues = [self.names.submit_queue, self.names.placed_queue, self.names.dead_letter_queue]
        queues += [self.names.node_queue(node) for node in self.handlers.view.alive_nodes()]
        missing = self.missing_queues
        for queue in queues:
            now = time.monotonic()
            if not missing.due(queue, now):
                continue  # found missing lately: its depth stays 0 until asked again
            try:
                depth = await self.transport.queue_depth_if_present(queue)
            except Exception as error:  # a broker that did not answer is not an outage here
                logger.debug("depth of %s unavailable: %s", queue, error)
                continue
            if depth is None:
                missing.missed(queue, now)
                depth = 0
            else:
                missing.found(queue)
            self.metrics.queue_depth.labels(queue).set(depth)
        missing.keep_only(queues)

    def backlog_view(self) -> dict[str, Any]:
        """The small JSON that KEDA's metrics-api scaler reads."""
        backlog = self.handlers.backlog
        return {
            "backlog": backlog.pending + backlog.held,
            "pending": backlog.pending,
            "held": backlog.held,
            "alive_nodes": len(self.handlers.view.alive_nodes()),
        }

    def health(self) -> dict[str, Any]:
        body = super().health()
        body["nodes_alive"] = len(self.handlers.view.alive_nodes())
        body["reply_queues"] = {
            "watched": self.reply_queues.watched,
            "deleted": self.reply_queues.deleted_total,
        }
        if self.record is not None:
            body["record"] = {
                "consuming": bool(self.record_loops) and not self.record.outage,
                "ingested": self.record.ingested,
                "transactions": self.record.commits.flushes,
                "expired": self.record.expired,
            }
        return body

    def routes(self) -> dict[str, Callable[[], Response]]:
        routes = super().routes()
        routes["/metrics"] = lambda: Response(
            200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"
        )
        routes["/backlog"] = lambda: Response.json(self.backlog_view())
        return routes


def _dashboard(
    settings: MonitorSettings,
    handlers: MonitorHandlers,
    record_url: str | None,
    service: Service,
) -> Dashboard | None:
    """The web dashboard when ``BOSON_DASHBOARD_PORT`` is set (it needs the ``web`` extra);
    it reads the task record at ``record_url`` (None: no record, no Tasks page) and
    cancels through the service's publisher."""
    if settings.dashboard_port is None:
        return None
    try:
        from boson_services.monitor.dashboard.actions import BusCanceller
        from boson_services.monitor.dashboard.server import Dashboard
    except ImportError as error:
        raise ConfigError(
            f"the dashboard needs the web extra (pip install 'boson[web]'): {error}"
        ) from error
    canceller = BusCanceller(
        service.publisher.publish, service.names, reply_to=f"dashboard-{settings.instance_id}"
    )
    return Dashboard(settings, handlers, record_url=record_url, canceller=canceller)


def create(settings: MonitorSettings, transport: Transport, codec: Codec) -> MonitorService:
    return MonitorService(settings, transport, codec)


__all__ = ["MonitorService", "create"]
