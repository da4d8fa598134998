"""Closed-loop HTTP load for the dashboard benchmark: ten clients, two client kinds.

Each client asks one request, waits for its answer, then asks the next,
round-robin over the endpoints; the time of each request is kept per
endpoint. Two kinds of client do the same thing, so that the load
generator's own cost can be told apart from the server's:

- ``httpx``: one ``httpx.AsyncClient`` per client (a persistent connection;
  what an application would use), about 1.8 ms of CPU a request here;
- ``raw``: one persistent HTTP/1.1 connection per client on asyncio streams
  (:class:`KeepAliveConnection`), a GET written in one piece and the answer
  read by its ``Content-Length`` (or its chunks): the least a client can
  do, as a real deployment's clients on other machines cost this one nothing.

Both kinds run every client on one event loop in a process of their own
(:func:`latency_in_a_process`), and check that every answer is a 200.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import quote, urlsplit

import httpx

ClientKind = Literal["httpx", "raw"]
CLIENT_KINDS: tuple[ClientKind, ...] = ("raw", "httpx")

Get = Callable[[str], Awaitable[tuple[int, bytes]]]


class KeepAliveConnection:
    """One persistent HTTP/1.1 connection that GETs one path at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._request_head = f"Host: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """The status and body of ``GET path`` (``path`` already URL-encoded)."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        writer.write(b"GET " + path.encode("ascii") + b" HTTP/1.1\r\n" + self._request_head)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await self._chunks(reader)
        else:
            raise RuntimeError(f"{path}: an answer with neither a length nor chunks")
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return status, body

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            await writer.wait_closed()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def first_cursor(base: str) -> str:
    """The cursor of the tasks list's third page (a page after a cursor)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        first = (await http.get("/api/tasks", params={"limit": 50})).json()
        second = await http.get("/api/tasks", params={"limit": 50, "cursor": first["next_cursor"]})
    cursor = second.json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


async def latency(
    base: str,
    endpoints: tuple[str, ...],
    clients: int,
    requests: int,
    task_ids: list[str],
    kind: ClientKind,
) -> dict[str, dict[str, float]]:
    """p50 and p99 per endpoint of ``clients`` closed-loop clients of ``kind``."""
    timings: dict[str, list[float]] = {endpoint: [] for endpoint in endpoints}
    pick = random.Random(5)
    cursor = await first_cursor(base)

    async def one(number: int, get: Get) -> None:
        for index in range(requests):
            endpoint = endpoints[(number + index) % len(endpoints)]
            path = endpoint.format(
                task_id=quote(pick.choice(task_ids), safe=""),
                hour_ago=round(time.time() - 3600, 3),
                cursor=quote(cursor, safe=""),
            )
            began = time.perf_counter()
            status, body = await get(path)
            elapsed = time.perf_counter() - began
            if status != 200:
                raise RuntimeError(f"{path}: {status} {body[:200]!r}")
            timings[endpoint].append(elapsed)

    async def with_httpx(number: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def get(path: str) -> tuple[int, bytes]:
                answer = await http.get(path)
                return answer.status_code, answer.content

            await one(number, get)

    async def with_raw(number: int) -> None:
        where = urlsplit(base)
        assert where.hostname is not None
        assert where.port is not None
        connection = KeepAliveConnection(where.hostname, where.port)
        try:
            async with asyncio.timeout(30 * requests):
                await one(number, connection.get)
        finally:
            await connection.close()

    client = with_httpx if kind == "httpx" else with_raw
    await asyncio.gather(*(client(number) for number in range(clients)))
    return {
        endpoint: {
            "n": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        }
        for endpoint, values in timings.items()
        if values
    }


def latency_in_a_process(
    base: str,
    endpoints: tuple[str, ...],
    clients: int,
    kind: ClientKind,
    requests: int,
    task_ids: list[str],
) -> tuple[dict[str, dict[str, float]], float, float]:
    """:func:`latency`, run in a child process (``spawn``): a function it can pickle.

    Also the seconds it took and the clients' own CPU per request (ms): on a
    machine of two cores the clients take their share of what the server could use.

    The clients' own cyclic collector is off while they measure: a full pass
    here stops every client at once, mid-request, and its pause would be
    counted as the server's latency.
    """
    gc.collect()
    gc.disable()
    try:
        began, cpu = time.perf_counter(), time.process_time()
        timings = asyncio.run(latency(base, endpoints, clients, requests, task_ids, kind))
    finally:
        gc.enable()
    cpu_ms = 1000 * (time.process_time() - cpu) / (clients * requests)
    return timings, time.perf_counter() - began, cpu_ms


__all__ = [
    "CLIENT_KINDS",
    "ClientKind",
    "KeepAliveConnection",
    "latency",
    "latency_in_a_process",
    "percentile",
]
