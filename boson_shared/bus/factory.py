"""Pick a transport from a broker URL.

``memory://`` (or no URL at all) is the embedded broker; ``amqp://`` and
``amqps://`` are RabbitMQ. Anything else is a configuration error, reported
without the URL's password.
"""

from __future__ import annotations

from boson_shared.bus.abc import Transport
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.bus.broker_urls import mask_url
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.errors import ConfigError


def transport_from_url(
    url: str | None,
    *,
    memory_broker: MemoryBroker | None = None,
    connection_name: str = "boson",
) -> Transport:
    """A not yet connected transport for ``url``.

    For ``memory://`` pass the process's shared ``memory_broker`` so that
    several transports meet; without one, a private broker is made (only
    useful when this transport talks to itself).
    """
    if url is None or url.strip() == "" or url.startswith("memory://"):
        return MemoryTransport(memory_broker if memory_broker is not None else MemoryBroker())
    if url.startswith(("amqp://", "amqps://")):
        return AmqpTransport(url, connection_name=connection_name)
    raise ConfigError(
        f"unsupported broker URL {mask_url(url)!r}: use amqp://, amqps:// or memory://"
    )


__all__ = ["transport_from_url"]
