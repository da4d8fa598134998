"""A broker URL list with dead nodes in it: the transport finds the live one."""

from __future__ import annotations

import socket

import pytest
from yarl import URL

from boson_shared.bus.amqp import AmqpTransport


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_a_list_with_dead_nodes_connects_from_any_start(amqp_url: str) -> None:
    live = URL(amqp_url)
    dead = [_closed_port(), _closed_port()]
    listed = ",".join([amqp_url, *(f"127.0.0.1:{port}" for port in dead)])
    # Every start of the ring (random per transport) must reach the live node.
    for _ in range(6):
        transport = AmqpTransport(listed, connection_name="boson-test-url-list", op_timeout=5)
        await transport.connect()
        try:
            assert transport.is_connected
            await transport.publish("", "boson-test-nowhere", b"x")
        finally:
            await transport.close()
    assert live.port not in dead
