"""Running a service as a process: settings → logging → transport → serve.

Every ``boson_services/<name>/__main__.py`` is three lines on top of :func:`main`.
SIGTERM and SIGINT set the stop event: the service stops consuming, drains
within ``drain_grace_s`` and exits (docs/design.md#delivery).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import TypeVar

from boson_shared.bus.abc import Transport
from boson_shared.bus.factory import transport_from_url
from boson_shared.contract.codec import Codec, EnvelopeCodec
from boson_shared.errors import BosonError, BrokerUnavailableError, ConfigError
from boson_shared.logs import configure_logging
from boson_shared.runtime.bounded_run import run_bounded
from boson_shared.runtime.health import HealthServer
from boson_shared.runtime.heap import freeze_once_started
from boson_shared.runtime.service import Service
from boson_shared.settings import BosonSettings

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=BosonSettings)
ServiceFactory = Callable[[S, Transport, Codec], Service]


def require_broker_and_keys(settings: BosonSettings) -> str:
    """The broker URL of a standalone service; a clear ConfigError without one or a key.

    The embedded mode makes an ephemeral key; a service against a real broker
    must be given one, or peers could never read what it sends (docs/design.md#keys).
    """
    if settings.broker_url is None:
        raise ConfigError(
            "no broker configured: set BOSON_BROKER_URL or pass --broker "
            "(or use `boson demo` / `boson submit` for the in-process mode)"
        )
    if settings.keys is None:
        raise ConfigError(
            "no encryption key configured: set BOSON_KEYS (make one with `boson keys generate`)"
        )
    return settings.broker_url.get_secret_value()


async def connect_with_retry(transport: Transport, within_s: float) -> None:
    """Connect, retrying with growing pauses: a broker that starts a little
    after its services (compose, Kubernetes) is normal, not an error."""
    deadline = time.monotonic() + within_s
    pause = 0.25
    while True:
        try:
            await transport.connect()
            return
        except BrokerUnavailableError as error:
            if time.monotonic() + pause > deadline:
                raise
            logger.warning("broker not reachable yet (%s); retrying in %.1fs", error, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


async def serve(
    service: Service, *, stop: asyncio.Event | None = None, freeze_heap: bool = False
) -> None:
    """Run ``service`` (with its health endpoint) until SIGTERM/SIGINT or ``stop``.

    ``freeze_heap``: once the service has started, take the heap it built out
    of the collector's full passes (:mod:`boson_shared.runtime.heap`; a
    process that runs this service alone).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    settings = service.settings
    health: HealthServer | None = None
    if settings.health_port is not None:
        health = HealthServer(settings.health_host, settings.health_port, service.routes())
        await health.start()
        logger.info("health endpoint on %s:%d", settings.health_host, health.port)
    freezing = asyncio.ensure_future(freeze_once_started(service.started)) if freeze_heap else None
    try:
        await connect_with_retry(service.transport, settings.connect_timeout_s)
        await service.run(stop)
    finally:
        if freezing is not None:
            freezing.cancel()
        if health is not None:
            await health.close()
        await service.transport.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(factory: ServiceFactory[S], settings: S, name: str) -> int:
    """Process entry point: returns the exit code."""
    configure_logging(name, level=settings.log_level, json_lines=settings.log_json)
    try:
        url = require_broker_and_keys(settings)
        codec = EnvelopeCodec.from_settings(settings)
        transport = transport_from_url(url, connection_name=f"boson-{name}")
        service = factory(settings, transport, codec)
    except ConfigError as error:
        logger.error("cannot start %s: %s", name, error)
        return 2
    try:
        run_bounded(serve(service, freeze_heap=True))
    except BosonError as error:
        # Typed errors (broker gone for good, topology conflict) end the
        # process with one clear line; a supervisor decides what comes next.
        logger.error("%s stopped: %s: %s", name, type(error).__name__, error)
        return 1
    return 0


__all__ = ["ServiceFactory", "connect_with_retry", "main", "require_broker_and_keys", "serve"]
