"""The benchmark's light HTTP client reads answers whole, by length or by chunks."""

from __future__ import annotations

import asyncio

from benchmarks.http_load import KeepAliveConnection

ANSWERS = [
    b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n\r\nhello there",
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nno su\r\n7;ext=1\r\nch page\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
]


async def test_one_connection_answers_by_length_by_chunks_then_closes() -> None:
    requests: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for answer in ANSWERS:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answer[:20])  # in two pieces: the reader must wait for the rest
            await writer.drain()
            writer.write(answer[20:])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = KeepAliveConnection("127.0.0.1", port)
    try:
        assert await connection.get("/a?x=1") == (200, b"hello there")
        assert await connection.get("/b") == (404, b"no such page")
        assert await connection.get("/c") == (200, b"{}")
    finally:
        await connection.close()
        server.close()
        await server.wait_closed()
    assert connections == 1  # kept alive across the three
    assert requests[0].startswith(b"GET /a?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
