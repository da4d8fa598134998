"""The in-memory transport with its first matching publish failing, as a broker's can."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from boson_shared.bus.abc import Headers
from boson_shared.bus.memory import MemoryTransport


@dataclass
class FailsFirstPublish:
    """Wraps ``inner`` so that the first publish ``matches`` (exchange, routing
    key) picks fails with ``error`` — a nack, a dropped connection — and the
    rest go through."""

    inner: MemoryTransport
    matches: Callable[[str, str], bool]
    error: Exception
    failed: int = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

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
        if not self.failed and self.matches(exchange, routing_key):
            self.failed += 1
            raise self.error
        await self.inner.publish(
            exchange, routing_key, body, headers=headers, message_id=message_id, mandatory=mandatory
        )


__all__ = ["FailsFirstPublish"]
