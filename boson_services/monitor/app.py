"""Wiring of the monitor service: its queue, its loops, its HTTP routes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from boson_services.monitor.handlers import MonitorHandlers
from boson_services.monitor.metrics import MonitorMetrics
from boson_services.monitor.settings import MonitorSettings
from boson_services.monitor.view import ClusterView
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import BalancerBacklog, NodeHeartbeat, TaskPlaced, TaskResult
from boson_shared.contract.topology import (
    RK_ALL_HEARTBEATS,
    RK_ALL_RESULTS,
    RK_BACKLOG,
    RK_PLACED,
    BindingSpec,
    Topology,
)
from boson_shared.errors import ConfigError
from boson_shared.runtime.consumer import ConsumerSpec
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
            ),
            self.metrics,
            self.names,
            settings.instance_id,
            backlog_alert_threshold=settings.backlog_alert_threshold,
        )
        self.queue = self.names.subscriber_queue(self.name, settings.instance_id)
        self.dashboard = _dashboard(settings, self.handlers)

    def topology(self) -> Topology:
        expires_ms = int(self.monitor_settings.subscriber_expires_s * 1000)
        own = self.names.subscriber(
            self.name,
            self.settings.instance_id,
            [RK_ALL_HEARTBEATS, RK_ALL_RESULTS, RK_BACKLOG],
            expires_ms,
        )
        # Placements go to the work exchange; a copy to our queue counts them.
        placed = Topology(bindings=(BindingSpec(self.queue, self.names.work_exchange, RK_PLACED),))
        return own + placed

    def consumers(self) -> Sequence[ConsumerSpec[Any]]:
        return [
            ConsumerSpec(
                queue=self.queue,
                accepts=(NodeHeartbeat, TaskPlaced, TaskResult, BalancerBacklog),
                handler=self.handlers.handle,
                prefetch=self.settings.prefetch,
                items_in_turn=True,
            )
        ]

    def background(self) -> Sequence[tuple[float, Periodic]]:
        loops = [
            (self.monitor_settings.snapshot_interval_s, self.tick),
            (self.monitor_settings.queue_poll_interval_s, self.poll_queues),
        ]
        if self.dashboard is not None:
            loops.append((self.dashboard.source.history.interval_s, self.dashboard.sample))
        return loops

    async def on_start(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.start()

    async def on_stop(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.stop()

    async def tick(self) -> None:
        emits = self.handlers.tick()
        await self.publisher.publish_many([(e.route, e.message) for e in emits])

    async def poll_queues(self) -> None:
        queues = [self.names.submit_queue, self.names.placed_queue, self.names.dead_letter_queue]
        queues += [self.names.node_queue(node) for node in self.handlers.view.alive_nodes()]
        for queue in queues:
            try:
                depth = await self.transport.queue_depth(queue)
            except Exception as error:  # a queue not declared yet is not an outage
                logger.debug("depth of %s unavailable: %s", queue, error)
                continue
            self.metrics.queue_depth.labels(queue).set(depth)

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
        return body

    def routes(self) -> dict[str, Callable[[], Response]]:
        routes = super().routes()
        routes["/metrics"] = lambda: Response(
            200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"
        )
        routes["/backlog"] = lambda: Response.json(self.backlog_view())
        return routes


def _dashboard(settings: MonitorSettings, handlers: MonitorHandlers) -> Dashboard | None:
    """The web dashboard when ``BOSON_DASHBOARD_PORT`` is set (it needs the ``web`` extra)."""
    if settings.dashboard_port is None:
        return None
    try:
        from boson_services.monitor.dashboard.server import Dashboard
    except ImportError as error:
        raise ConfigError(
            f"the dashboard needs the web extra (pip install 'boson[web]'): {error}"
        ) from error
    return Dashboard(settings, handlers)


def create(settings: MonitorSettings, transport: Transport, codec: Codec) -> MonitorService:
    return MonitorService(settings, transport, codec)


__all__ = ["MonitorService", "create"]
