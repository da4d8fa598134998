"""A steady stream of submissions that survives a broker node going away.

A batch whose publish fails (its connection dropped, no confirm) is sent
again with the same task ids: the client shows a task once however many
times it crossed the pipeline, so a resend cannot inflate the count.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from boson.client import Client, TaskHandle, TaskRequest
from boson_shared.errors import BosonError


async def submit_retrying(
    client: Client, requests: list[TaskRequest], within_s: float = 60.0
) -> list[TaskHandle]:
    """``submit_many`` sent again (same task ids) until confirmed, within ``within_s``."""
    async with asyncio.timeout(within_s):
        while True:
            try:
                return await client.submit_many(requests)
            except BosonError:
                await asyncio.sleep(0.5)


def burn_tasks(count: int, burn_s: float = 0.005) -> list[TaskRequest]:
    """``count`` short burn tasks, each with its own id fixed up front."""
    return [
        TaskRequest("burn", params={"seconds": burn_s}, task_id=uuid.uuid4().hex)
        for _ in range(count)
    ]


@dataclass
class Feeder:
    """Submits ``batch`` burn tasks every ``every_s`` until stopped."""

    client: Client
    batch: int = 10
    every_s: float = 0.1
    burn_s: float = 0.005
    handles: list[TaskHandle] = field(default_factory=list)
    resends: int = 0
    confirmed_at: list[float] = field(default_factory=list)
    """Monotonic time each batch was confirmed."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, timeout: float = 60.0) -> list[TaskHandle]:
        self._stop.set()
        if self._task is not None:
            async with asyncio.timeout(timeout):
                await self._task
        return self.handles

    def confirmed_between(self, start: float, end: float) -> int:
        return sum(1 for at in self.confirmed_at if start <= at <= end)

    async def _run(self) -> None:
        while not self._stop.is_set():
            requests = burn_tasks(self.batch, self.burn_s)
            while True:
                try:
                    self.handles += await self.client.submit_many(requests)
                    self.confirmed_at.append(time.monotonic())
                    break
                except BosonError:
                    self.resends += 1
                    await asyncio.sleep(0.5)
            await asyncio.sleep(self.every_s)


__all__ = ["Feeder", "burn_tasks", "submit_retrying"]
