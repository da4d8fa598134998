"""The AMQP transport: RabbitMQ through aio-pika's robust connection.

One connection per transport, three kinds of channel on it:

* one **publishing** channel with publisher confirms. Each ``publish`` awaits
  its own confirm, but many may be in flight at once on the channel (aiormq
  matches confirms by delivery tag), so concurrent publishers pipeline.
  Publishing waits for a reconnect to finish (bounded by ``confirm_timeout``).
* one **channel per consumer** (its own prefetch), see
  :mod:`boson_shared.bus.amqp_consumer`;
* one plain aiormq **admin** channel for declares, deletes and passive
  declares. It lives outside aio-pika's robust bookkeeping so that an
  expected 404 (a depth asked of a missing queue) disturbs nobody and a
  deleted queue is not re-created by a later reconnect; it is reopened on
  demand.

The robust connection reconnects by itself every ``reconnect_interval``
seconds and restores the consumer channels (qos, queue, consumer).

Publishing is not ``mandatory`` unless asked: a message that routes nowhere
is confirmed and dropped, as AMQP does for events nobody listens to. Work
routes, where an unroutable message is a lost task, pass ``mandatory=True``
and get :class:`~boson_shared.errors.UnroutableError` instead.

The URL may name several nodes of a cluster (comma-separated, see
:mod:`boson_shared.bus.broker_urls`): the transport starts at a random one
that answers and its robust connection fails over along the list
(:class:`~boson_shared.bus.failover.FailoverConnection`).

The URL's password never reaches a log line or an error: see :func:`mask_url`.

``amqps://`` connects with TLS and verifies the broker's certificate and
host name against the system's CAs; ``?cafile=/path/ca.pem`` (or ``capath``,
``certfile`` + ``keyfile`` for a client certificate) in the URL changes what
is trusted. Only an explicit ``?no_verify_ssl=1`` turns verification off
(``tests/reliability/test_tls.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator

import aiormq
from pamqp import commands as spec
from yarl import URL

from boson_shared.bus import headers as _headers
from boson_shared.bus.abc import ConnectionListener, DeliveryHandler, Headers
from boson_shared.bus.amqp_admin import _BROKER_ERRORS, AmqpAdmin, _Connected
from boson_shared.bus.amqp_consumer import AmqpSubscription, open_subscription
from boson_shared.bus.broker_urls import failover_order, mask_url, parse_broker_urls
from boson_shared.bus.cancel_wins import cancel_wins
from boson_shared.bus.coalescing import CoalescingTransportFactory
from boson_shared.bus.failover import FailoverConnection
from boson_shared.contract.topology import QueueSpec
from boson_shared.errors import (
    BrokerUnavailableError,
    ConfigError,
    PublishNotConfirmedError,
    UnroutableError,
)

log = logging.getLogger(__name__)

_PERSISTENT = 2
_RECYCLE_AFTER_NACK_S = 1.0


class _ConnectFailures(logging.Filter):
    """Drops aiormq's own ERROR line for a failed connect while Boson reports it."""

    active = 0

    def filter(self, record: logging.LogRecord) -> bool:
        return self.active == 0 or record.levelno < logging.ERROR


_CONNECT_FAILURES = _ConnectFailures()
logging.getLogger("aiormq.connection").addFilter(_CONNECT_FAILURES)


@contextlib.contextmanager
def _quiet_connect_errors() -> Iterator[None]:
    """While connecting: the failure becomes one typed error, not two log lines."""
    _CONNECT_FAILURES.active += 1
    try:
        yield
    finally:
        _CONNECT_FAILURES.active -= 1


class AmqpTransport(AmqpAdmin):
    """:class:`~boson_shared.bus.abc.Transport` on RabbitMQ.

    ``confirm_timeout`` bounds a publish (including waiting out a reconnect);
    ``op_timeout`` bounds connecting to one node, declares, deletes and
    channel setup. ``url`` is one node or a comma-separated list; a malformed
    one raises :class:`~boson_shared.errors.ConfigError` here.
    """

    def __init__(
        self,
        url: str,
        *,
        connection_name: str = "boson",
        confirm_timeout: float = 30.0,
        op_timeout: float = 10.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        self._nodes = parse_broker_urls(url)
        self._masked = mask_url(url)
        secrets = {node.password for node in self._nodes} | {n.raw_password for n in self._nodes}
        # Longest first, so that a password holding another is masked whole.
        self._passwords = sorted((p for p in secrets if p), key=len, reverse=True)
        self._name = connection_name
        self._confirm_timeout = confirm_timeout
        self._op_timeout = op_timeout
        self._reconnect_interval = reconnect_interval
        self._state: _Connected | None = None
        # Queues this transport declared and their bindings: a consumer
        # re-declares and re-binds them on reconnect (a per-node queue that
        # expired comes back; an exclusive queue is made on the new node).
        self._queue_specs: dict[str, QueueSpec] = {}
        self._queue_bindings: dict[str, dict[tuple[str, str], None]] = {}
        self.transport_factory = CoalescingTransportFactory()
        """Makes each connection's socket writes one per event-loop turn."""
        self._listeners: list[ConnectionListener] = []

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "not connected"
        return f"<AmqpTransport {self._name!r} {self._masked} {state}>"

    def _scrub(self, error: BaseException) -> str:
        text = f"{type(error).__name__}: {error}"
        for secret in self._passwords:
            text = text.replace(secret, "****")
        return mask_url(text)

    def _require(self) -> _Connected:
        if self._state is None:
            raise BrokerUnavailableError(f"not connected to {self._masked}")
        return self._state

    @property
    def is_connected(self) -> bool:
        state = self._state
        return (
            state is not None
            and not state.connection.is_closed
            and state.connection.connected.is_set()
        )

    def watch_connection(self, listener: ConnectionListener) -> None:
        """Tell ``listener`` of drops and recoveries: aio-pika's close callbacks
        (a drop, or a failed attempt while down) and reconnect callbacks (run
        once the channels and their consumers are restored)."""
        self._listeners.append(listener)

    def _tell(self, connected: bool) -> None:
        for listener in self._listeners:
            try:
                listener(connected)
            except Exception:
                # A listener's bug must not break aio-pika's reconnect loop.
                log.exception("connection listener %r failed", listener)

    # -- lifecycle ---------------------------------------------------------

    async def connect(self) -> None:
        """Connect to a random node of the list, trying each in turn, and open
        the publishing channel; BrokerUnavailableError when none answers."""
        if self._state is not None:
            return
        order = failover_order(self._nodes)
        failures: list[str] = []
        for start in range(len(order)):
            nodes = order[start:] + order[:start]
            try:
                self._state = await self._connect_to(nodes)
            except BrokerUnavailableError as e:
                failures.append(str(e))
                continue
            self._state.connection.reconnect_callbacks.add(self._on_reconnect)
            self._state.connection.close_callbacks.add(self._on_lost)
            log.info("connected to %s as %r", mask_url(str(nodes[0])), self._name)
            return
        raise BrokerUnavailableError("; ".join(failures))

    async def _connect_to(self, nodes: tuple[URL, ...]) -> _Connected:
        """A connection to ``nodes[0]`` that fails over along ``nodes`` later."""
        where = mask_url(str(nodes[0]))
        connection = FailoverConnection(
            nodes,
            client_properties={"connection_name": self._name},
            reconnect_interval=self._reconnect_interval,
        )
        # aio-pika passes its kwargs on to every (re)connect of aiormq; this
        # one is not among the URL parameters it parses, so it is set here.
        connection.kwargs["transport_factory"] = self.transport_factory
        try:
            with _quiet_connect_errors():
                async with asyncio.timeout(self._op_timeout):
                    await connection.connect(timeout=self._op_timeout)
                    publisher = connection.channel(publisher_confirms=True, on_return_raises=True)
                    await publisher.initialize(timeout=self._op_timeout)
        except aiormq.exceptions.InvalidFrameError as e:
            await connection.close()
            if "Connection.Close" not in str(e):
                raise BrokerUnavailableError(
                    f"cannot connect to {self._masked}: {self._scrub(e)}"
                ) from None
            # RabbitMQ answers a vhost that does not exist, or that the user
            # may not use, by closing the connection it was opening.
            vhost = nodes[0].path[1:] or "/"
            raise ConfigError(
                f"the broker at {where} refused to open vhost {vhost!r}: "
                "it does not exist or this user may not use it"
            ) from None
        except (
            aiormq.exceptions.ProbableAuthenticationError,
            aiormq.exceptions.AuthenticationError,
        ) as e:
            # Wrong credentials do not get better by waiting: say so at once.
            await connection.close()
            raise ConfigError(
                f"the broker at {where} refused the credentials ({type(e).__name__})"
            ) from None
        except (*_BROKER_ERRORS, TimeoutError, RuntimeError) as e:
            await connection.close()
            raise BrokerUnavailableError(f"cannot connect to {where}: {self._scrub(e)}") from None
        except BaseException:
            await connection.close()
            raise
        return _Connected(connection, publisher)

    def _on_reconnect(self, *_: object) -> None:
        state = self._state
        where = mask_url(str(state.connection.node)) if state is not None else self._masked
        log.info("reconnected to %s; consumers resume", where)
        self._tell(True)

    def _on_lost(self, *_: object) -> None:
        if self._state is None:
            return  # our own close(): nobody is left to tell
        self._tell(False)

    async def close(self) -> None:
        """Close consumers and the connection; unsettled deliveries are requeued."""
        state, self._state = self._state, None
        if state is None:
            return
        for subscription in state.subscriptions:
            await subscription.close()
        try:
            async with asyncio.timeout(self._op_timeout):
                await state.connection.close()
        except (*_BROKER_ERRORS, TimeoutError) as e:
            log.debug("closing the connection to %s: %s", self._masked, self._scrub(e))
        log.info("closed the connection to %s", self._masked)

    # -- publish / consume -------------------------------------------------

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Headers | None = None,
        message_id: str | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish one persistent message and wait for its confirm.

        Safe to call concurrently: the confirms of concurrent calls are in
        flight together. Raises :class:`~boson_shared.errors.PublishNotConfirmedError`
        when the broker nacks, returns (``mandatory`` and unroutable), the
        exchange is missing, or no confirm comes within ``confirm_timeout``;
        :class:`~boson_shared.errors.BrokerUnavailableError` when the connection
        drops with the confirm outstanding (the message may still have
        arrived — message ids make the retry safe).
        """
        state = self._require()
        properties = spec.Basic.Properties(
            delivery_mode=_PERSISTENT,
            headers=_headers.to_amqp(_headers.outgoing(headers)),
            # aiormq matches a returned message to its publish by message id,
            # so every publish carries one.
            message_id=message_id if message_id is not None else uuid.uuid4().hex,
        )
        where = f"{exchange!r} / {routing_key!r}"
        channel: aiormq.abc.AbstractChannel | None = None
        try:
            with cancel_wins():
                async with asyncio.timeout(self._confirm_timeout):
                    channel = await self._publishing_channel(state)
                    result = await channel.basic_publish(
                        body,
                        exchange=exchange,
                        routing_key=routing_key,
                        properties=properties,
                        mandatory=mandatory,
                    )
        except TimeoutError as e:
            raise PublishNotConfirmedError(
                f"no confirm within {self._confirm_timeout}s for {where}"
            ) from e
        except aiormq.exceptions.PublishError as e:
            raise UnroutableError(f"unroutable: nothing bound for {where}") from e
        except aiormq.exceptions.DeliveryError as e:
            if channel is not None:
                await self._recycle_publisher(state, channel)
            raise PublishNotConfirmedError(f"broker nacked the publish to {where}") from e
        except aiormq.exceptions.ChannelNotFoundEntity as e:
            raise PublishNotConfirmedError(f"exchange {exchange!r} does not exist") from e
        except _BROKER_ERRORS as e:
            raise BrokerUnavailableError(
                f"connection lost publishing to {where}: {self._scrub(e)}"
            ) from e
        if not isinstance(result, spec.Basic.Ack):
            raise PublishNotConfirmedError(f"unexpected confirm {result!r} for {where}")

    async def _recycle_publisher(
        self, state: _Connected, channel: aiormq.abc.AbstractChannel
    ) -> None:
        """Close the publishing channel after a nack; the robust channel reopens it.

        When a broker node dies, a channel that failed over to another node
        and publishes to a quorum queue whose leader was on the dead one can
        have that publish nacked, and every later one on the same channel,
        for minutes after the queue has a new leader, while other channels
        publish to the same queue unhindered (``tests/cluster``). A fresh
        channel starts afresh. At most once a second: publishes in flight
        on the closed channel fail as a lost connection does and are retried.
        """
        now = time.monotonic()
        if channel.is_closed or now - state.recycled_at < _RECYCLE_AFTER_NACK_S:
            return
        state.recycled_at = now
        log.warning("the broker nacked a publish: reopening the publishing channel")
        try:
            async with asyncio.timeout(self._op_timeout):
                await channel.close()
        except (*_BROKER_ERRORS, TimeoutError) as e:
            log.debug("closing the nacked publishing channel: %s", self._scrub(e))

    async def _publishing_channel(self, state: _Connected) -> aiormq.abc.AbstractChannel:
        """The open channel under the robust publisher, waiting out a reopen."""
        while True:
            await state.publisher.ready()
            channel = await state.publisher.get_underlay_channel()
            if not channel.is_closed:
                return channel
            # The broker closed the channel (a publish to a missing exchange)
            # and the robust channel has not begun to reopen it yet. Rare,
            # short, and bounded by the caller's timeout.
            await asyncio.sleep(0.02)

    async def consume(
        self, queue: str, handler: DeliveryHandler, *, prefetch: int, no_ack: bool = False
    ) -> AmqpSubscription:
        """Consume ``queue`` on a channel of its own with ``prefetch`` (0 = no limit),
        or with AMQP's ``no-ack`` (the broker settles each delivery as it sends it).

        Raises :class:`~boson_shared.errors.ConfigError` when the queue does not exist.
        """
        state = self._require()
        if prefetch < 0:
            raise ValueError("prefetch must be >= 0")
        try:
            with cancel_wins():
                subscription = await open_subscription(
                    state.connection,
                    queue,
                    handler,
                    prefetch=prefetch,
                    no_ack=no_ack,
                    spec=self._queue_specs.get(queue),
                    bindings=tuple(self._queue_bindings.get(queue, {})),
                    op_timeout=self._op_timeout,
                )
        except aiormq.exceptions.ChannelNotFoundEntity as e:
            raise ConfigError(f"cannot consume {queue!r}: the queue does not exist") from e
        except (*_BROKER_ERRORS, TimeoutError) as e:
            raise BrokerUnavailableError(f"cannot consume {queue!r}: {self._scrub(e)}") from e
        state.subscriptions.append(subscription)
        return subscription


__all__ = ["AmqpTransport", "mask_url"]
