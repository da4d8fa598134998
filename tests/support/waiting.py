"""Waiting on running services: conditions, live nodes, health, memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import psutil

from boson.client import Client
from tests.support.cluster import ProcessCluster


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float, step: float = 0.05
) -> float:
    """Poll until ``predicate`` holds; returns the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if not isinstance(value, bool):
                value = await value
            if value:
                return time.monotonic() - start
            await asyncio.sleep(step)


async def wait_for_nodes(client: Client, count: int, timeout: float = 30.0) -> None:
    """Until the monitor's snapshot shows ``count`` live nodes."""
    async with asyncio.timeout(timeout):
        while True:
            snapshot = await client.snapshot(timeout)
            if sum(1 for node in snapshot.nodes if node.alive) >= count:
                return


async def health(cluster: ProcessCluster, name: str) -> dict[str, Any]:
    """The process's /health body ({} when it does not answer)."""
    body = await asyncio.to_thread(cluster.processes[name].health)
    return body or {}


def rss(cluster: ProcessCluster, names: Iterable[str]) -> dict[str, int]:
    """Resident memory of each named service process, in bytes."""
    return {
        name: psutil.Process(cluster.processes[name].process.pid).memory_info().rss
        for name in names
    }


async def until(condition: Callable[[], bool], what: str, within: float) -> None:
    """Until ``condition`` holds (state other tasks change); a test failure naming ``what``."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - state owned by other tasks
                await asyncio.sleep(0.02)
    except TimeoutError as error:
        raise AssertionError(f"timed out waiting for {what}") from error


__all__ = ["health", "rss", "until", "wait_for_nodes", "wait_until"]
