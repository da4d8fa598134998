"""The coalescing writer: one socket write per loop turn, order kept, nothing lost.

Runs over a real loopback TCP connection (a server on 127.0.0.1), so what
arrives is what the kernel carried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from boson_shared.bus.coalescing import LARGE_WRITE, CoalescingWriter

pytestmark = pytest.mark.timeout(20)


@dataclass
class Pair:
    writer: CoalescingWriter
    received: asyncio.Queue[bytes]
    sends: list[bytes]
    """What the wrapped StreamWriter was asked to write, in order."""


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    received: asyncio.Queue[bytes] = asyncio.Queue()
    served: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(writer)
        while data := await reader.read(1 << 20):
            received.put_nowait(data)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, raw = await asyncio.open_connection("127.0.0.1", port)
    sends: list[bytes] = []
    write = raw.write

    def spy(data: bytes | bytearray | memoryview) -> None:
        sends.append(bytes(data))
        write(data)

    raw.write = spy  # type: ignore[method-assign]
    writer = CoalescingWriter(raw)
    try:
        yield Pair(writer, received, sends)
    finally:
        writer.close()
        await raw.wait_closed()
        for other_end in served:
            other_end.close()
            await other_end.wait_closed()
        server.close()
        await server.wait_closed()


async def read_exactly(queue: asyncio.Queue[bytes], size: int) -> bytes:
    data = b""
    async with asyncio.timeout(5):
        while len(data) < size:
            data += await queue.get()
    return data


async def test_writes_of_one_turn_leave_in_one_send_in_order(pair: Pair) -> None:
    frames = [f"frame-{i};".encode() for i in range(40)]
    for frame in frames:
        pair.writer.write(frame)
    assert pair.sends == []  # nothing yet: the flush runs at the end of the turn
    await asyncio.sleep(0)
    assert pair.sends == [b"".join(frames)]
    assert (pair.writer.frames, pair.writer.writes) == (40, 1)
    assert await read_exactly(pair.received, sum(map(len, frames))) == b"".join(frames)


async def test_each_turn_flushes_its_own_writes(pair: Pair) -> None:
    pair.writer.write(b"a")
    await asyncio.sleep(0)
    pair.writer.write(b"b")
    pair.writer.write(b"c")
    await asyncio.sleep(0)
    assert pair.sends == [b"a", b"bc"]
    assert await read_exactly(pair.received, 3) == b"abc"


async def test_drain_keeps_coalescing_and_the_bytes_still_go(pair: Pair) -> None:
    # aiormq drains after every frame; that must not force a send per frame.
    for i in range(5):
        pair.writer.write(bytes([65 + i]))
        await pair.writer.drain()
    assert pair.sends == []
    await asyncio.sleep(0)
    assert pair.sends == [b"ABCDE"]
    assert await read_exactly(pair.received, 5) == b"ABCDE"


async def test_a_large_buffer_is_written_at_once(pair: Pair) -> None:
    big = b"x" * LARGE_WRITE
    pair.writer.write(b"head")
    pair.writer.write(big)
    assert pair.sends == [b"head" + big]  # no waiting, one send, order kept
    pair.writer.write(b"tail")
    await asyncio.sleep(0)
    assert pair.sends[-1] == b"tail"
    assert await read_exactly(pair.received, len(big) + 8) == b"head" + big + b"tail"


async def test_close_and_write_eof_send_what_is_pending(pair: Pair) -> None:
    pair.writer.write(b"last words")
    pair.writer.write_eof()
    assert pair.sends == [b"last words"]
    assert await read_exactly(pair.received, 10) == b"last words"


async def test_writes_after_close_are_dropped_like_asyncio_does(pair: Pair) -> None:
    pair.writer.close()
    pair.writer.write(b"too late")
    await asyncio.sleep(0)
    assert pair.sends == []
    assert pair.writer.writes == 0


async def test_everything_else_is_the_wrapped_writers(pair: Pair) -> None:
    assert pair.writer.transport is not None
    assert pair.writer.is_closing() is False
    assert pair.writer.get_extra_info("peername")[0] == "127.0.0.1"
