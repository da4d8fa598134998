"""Declarations of the wire topology: exchanges, queues, bindings, retry delays.

Plain values both transports declare; :class:`~boson_shared.contract.topology.Names`
builds them for one namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

ExchangeType = Literal["topic", "fanout", "direct"]
QueueType = Literal["quorum", "classic"]


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: ExchangeType
    durable: bool = True
    alternate_exchange: str | None = None
    """Where a message goes that routes to no queue here (``alternate-exchange``)."""

    def arguments(self) -> dict[str, str]:
        """The arguments to declare this exchange with."""
        if self.alternate_exchange is None:
            return {}
        return {"alternate-exchange": self.alternate_exchange}


@dataclass(frozen=True)
class QueueSpec:
    """A queue and the broker arguments that shape it."""

    name: str
    queue_type: QueueType = "quorum"
    durable: bool = True
    expires_ms: int | None = None
    """Delete the queue after this long without consumers (per-client/node queues)."""
    message_ttl_ms: int | None = None
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    single_active_consumer: bool = False
    dead_letter_at_least_once: bool = False
    """Quorum only: dead-letter with confirms, never dropping a message on the
    way (needs ``x-overflow=reject-publish``, which it sets)."""
    exclusive: bool = False
    """Owned by the declaring connection: deleted when it closes, declared
    again (classic, on the connection's new node) when it reconnects. Never
    durable, never expiring."""

    def __post_init__(self) -> None:
        if self.exclusive and (
            self.durable or self.queue_type != "classic" or self.expires_ms is not None
        ):
            raise ValueError(f"exclusive queue {self.name!r} must be classic, transient, no expiry")

    def arguments(self) -> dict[str, str | int | bool]:
        """The ``x-`` arguments to declare this queue with."""
        args: dict[str, str | int | bool] = {"x-queue-type": self.queue_type}
        if self.expires_ms is not None:
            args["x-expires"] = self.expires_ms
        if self.message_ttl_ms is not None:
            args["x-message-ttl"] = self.message_ttl_ms
        if self.dead_letter_exchange is not None:
            args["x-dead-letter-exchange"] = self.dead_letter_exchange
        if self.dead_letter_routing_key is not None:
            args["x-dead-letter-routing-key"] = self.dead_letter_routing_key
        if self.single_active_consumer:
            args["x-single-active-consumer"] = True
        if self.dead_letter_at_least_once and self.queue_type == "quorum":
            args["x-dead-letter-strategy"] = "at-least-once"
            args["x-overflow"] = "reject-publish"
        return args


@dataclass(frozen=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """A set of exchanges, queues and bindings, declared idempotently."""

    exchanges: tuple[ExchangeSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    bindings: tuple[BindingSpec, ...] = ()

    def __add__(self, other: Topology) -> Topology:
        return Topology(
            exchanges=_unique(self.exchanges + other.exchanges),
            queues=_unique(self.queues + other.queues),
            bindings=_unique(self.bindings + other.bindings),
        )

    def queue(self, name: str) -> QueueSpec:
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise KeyError(name)


_T = TypeVar("_T")


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class RetryPolicy:
    """Growing delays between attempts of a failed handler, then dead-letter.

    ``delays_ms[i]`` is the wait before attempt ``i + 2``; attempts past the
    last tier reuse the last delay. ``max_attempts`` counts the first try.
    """

    delays_ms: tuple[int, ...] = (1_000, 5_000, 30_000)
    max_attempts: int = 4

    def __post_init__(self) -> None:
        if not self.delays_ms or any(d <= 0 for d in self.delays_ms):
            raise ValueError("retry delays must be positive")
        if list(self.delays_ms) != sorted(self.delays_ms):
            raise ValueError("retry delays must grow")
        if self.max_attempts < 1:
            raise ValueError("max_attempts counts the first try and must be >= 1")

    def total_delay_ms(self) -> int:
        """Every delay a message may wait out under this policy, added up."""
        return sum(self.delay_ms(attempt) for attempt in range(1, self.max_attempts))

    def delay_ms(self, failed_attempt: int) -> int:
        """The delay before the attempt after ``failed_attempt`` (1-based)."""
        index = min(max(failed_attempt, 1) - 1, len(self.delays_ms) - 1)
        return self.delays_ms[index]


__all__ = [
    "BindingSpec",
    "ExchangeSpec",
    "ExchangeType",
    "QueueSpec",
    "QueueType",
    "RetryPolicy",
    "Topology",
]
