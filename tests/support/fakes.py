"""Fakes the unit tests share: a clock moved by hand and a recording ``publish``."""

from __future__ import annotations

from boson_shared.contract.messages import Message
from boson_shared.runtime.publisher import Route


class Clock:
    """A clock that stands still until the test sets ``now``; calling it reads it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Published:
    """A ``publish(route, message)`` that records what would have been sent, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[Route, Message]] = []

    async def __call__(self, route: Route, message: Message) -> None:
        self.sent.append((route, message))

    @property
    def messages(self) -> list[Message]:
        """The messages alone, in the order they were published."""
        return [message for _, message in self.sent]


__all__ = ["Clock", "Published"]
