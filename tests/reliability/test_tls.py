"""``amqps://`` works, and certificate verification is on unless turned off.

A TLS-terminating proxy (asyncio + ssl, 127.0.0.1 only) sits in front of the
test broker with a throwaway CA from ``trustme``. The five services run as
processes against ``amqps://…?cafile=<ca.pem>`` and real tasks go through.
Without the CA file (the system store), with another CA, or under a name the
certificate does not carry, the connection is refused — with an error that
names the cause and not the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from yarl import URL

from boson.client import Client
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.errors import BrokerUnavailableError
from tests.support.cluster import ProcessCluster
from tests.support.waiting import health, wait_for_nodes


@dataclass
class TlsProxy:
    """Terminates TLS on 127.0.0.1 and pipes the plain bytes to the broker."""

    server: asyncio.Server
    port: int
    connections: int = 0
    pipes: set[asyncio.Task[None]] = field(default_factory=set)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def tls_proxy(context: ssl.SSLContext, broker: URL) -> AsyncIterator[TlsProxy]:
    proxy: TlsProxy

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        proxy.connections += 1
        try:
            broker_r, broker_w = await asyncio.open_connection(broker.host, broker.port)
        except OSError:
            client_w.close()
            return
        for task in (
            asyncio.create_task(_pipe(client_r, broker_w)),
            asyncio.create_task(_pipe(broker_r, client_w)),
        ):
            proxy.pipes.add(task)
            task.add_done_callback(proxy.pipes.discard)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    proxy = TlsProxy(server, int(server.sockets[0].getsockname()[1]))
    try:
        yield proxy
    finally:
        server.close()
        for task in list(proxy.pipes):
            task.cancel()
        await asyncio.gather(*proxy.pipes, return_exceptions=True)
        await server.wait_closed()


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


def _amqps(amqp_url: str, port: int, host: str = "localhost", **query: str) -> str:
    plain = URL(amqp_url)
    url = URL.build(
        scheme="amqps",
        user=plain.user,
        password=plain.password,
        host=host,
        port=port,
        path=plain.path or "/",
    )
    return str(url.with_query(query) if query else url)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


@pytest.mark.broker
@pytest.mark.timeout(180)
async def test_tasks_run_through_amqps_with_a_verified_certificate(
    amqp_url: str, namespace: str, tmp_path: Path, ca: tuple[trustme.CA, Path]
) -> None:
    authority, pem = ca
    async with tls_proxy(_server_context(authority), URL(amqp_url)) as proxy:
        tls_url = _amqps(amqp_url, proxy.port, cafile=str(pem))
        cluster = ProcessCluster(tls_url, namespace, tmp_path)
        try:
            for service in ("monitor", "scheduler", "balancer", "transfer"):
                cluster.start(service)
            cluster.start("executor", "--node-id", "tls-1", name="tls-1")
            await cluster.wait_healthy()
            client = await Client.connect(settings=cluster.settings())
            try:
                await wait_for_nodes(client, 1)
                handles = [
                    await client.submit("forecast", params={"values": [1, 2, 3, 4], "horizon": 2})
                    for _ in range(20)
                ]
                handles.append(await client.submit("noop", data=b"x" * 400_000))  # via transfer
                async with asyncio.timeout(60):
                    results = [await handle.result() for handle in handles]
            finally:
                await client.close()
            assert all(r.status == "succeeded" for r in results), results
            assert results[0].output["forecast"] == pytest.approx([5.0, 6.0])
            # Every process (and the client) really came in through the proxy.
            assert proxy.connections >= len(cluster.processes) + 1
            for name in cluster.processes:
                assert (await health(cluster, name))["broker_connected"] is True
        finally:
            # In a thread: the proxy runs on this loop and the drains go through it.
            await asyncio.to_thread(cluster.stop_all)
        for name, process in cluster.processes.items():
            assert process.process.returncode == 0, cluster.log(name)[-2000:]


async def _refused(url: str) -> str:
    transport = AmqpTransport(url, connection_name="boson-test-tls", op_timeout=10)
    with pytest.raises(BrokerUnavailableError) as caught:
        await transport.connect()
    await transport.close()
    return str(caught.value)


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_verification_is_on_by_default_and_a_wrong_ca_is_refused(
    amqp_url: str, tmp_path: Path, ca: tuple[trustme.CA, Path]
) -> None:
    authority, pem = ca
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    async with tls_proxy(_server_context(authority), URL(amqp_url)) as proxy:
        # The system store does not know the throwaway CA: verification is on.
        default = await _refused(_amqps(amqp_url, proxy.port))
        wrong_ca = await _refused(_amqps(amqp_url, proxy.port, cafile=str(other)))
        # The right CA, but a name the certificate does not carry.
        wrong_name = await _refused(_amqps(amqp_url, proxy.port, host="127.0.0.1", cafile=str(pem)))
        for text in (default, wrong_ca):
            assert "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text
        assert "mismatch" in wrong_name or "match" in wrong_name.lower()
        # The right CA and name: connected.
        good = AmqpTransport(_amqps(amqp_url, proxy.port, cafile=str(pem)), op_timeout=10)
        await good.connect()
        assert good.is_connected
        await good.close()
