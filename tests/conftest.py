"""Fixtures every test suite shares: the broker, a namespace, transports.

The broker (docs/design.md#testing): ``BOSON_TEST_AMQP_URL`` first; else a testcontainers
RabbitMQ where a Docker engine answers; else the test is skipped with the
reason — and ``BOSON_REQUIRE_BROKER=1`` (CI) turns that skip into a failure.
Reading the environment is the harness's job; nothing under test does.

Every test gets its own namespace (``t-<session>-<test>``). Whatever the
``transport_factory`` transports declare is tracked and deleted after the
test; at the end of the session, queues and exchanges left under the
session's prefix (by transports made elsewhere) are swept when
``rabbitmqctl`` can see the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from yarl import URL

from boson_shared.bus.abc import (
    ConnectionListener,
    DeliveryHandler,
    Headers,
    Subscription,
    Transport,
)
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.topology import Topology
from boson_shared.runtime.compiled import STALE_HINT, describe, stale_modules

_DATA_HOME = pytest.StashKey[str]()


def pytest_unconfigure(config: pytest.Config) -> None:
    data_home = config.stash.get(_DATA_HOME, None)
    if data_home is not None:
        shutil.rmtree(data_home, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    # Whether the tests run admission compiled, as a built install does.
    return describe()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # The task record's default SQLite file lives under XDG_DATA_HOME. Tests
    # (and the processes they start, which inherit the environment) get a
    # fresh one, so a run never reads or migrates the user's own record.
    data_home = config.stash.setdefault(_DATA_HOME, tempfile.mkdtemp(prefix="boson-test-data-"))
    os.environ["XDG_DATA_HOME"] = data_home
    # A SIGTERM (a CI timeout, ``kill``) ends the run as Ctrl-C does, so the
    # interpreter exits normally and tests.support.cluster's exit-time sweep
    # stops the service processes; by default it would die with them running.
    signal.signal(signal.SIGTERM, _interrupt)
    # A compiled module built from an older source would be tested in place
    # of the source as it is now.
    stale = stale_modules()
    if stale:
        pytest.exit(f"compiled from older sources: {', '.join(stale)}: {STALE_HINT}", returncode=2)


def _docker_socket_accepts() -> bool:
    """A raw connect first: the docker client leaks a socket when nobody answers."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(host.removeprefix("unix://"))
            return True
        parsed = URL(host)
        with socket.create_connection((parsed.host or "localhost", parsed.port or 2375), 2):
            return True
    except (OSError, ValueError):
        return False


def _docker_answers() -> bool:
    if not _docker_socket_accepts():
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def session_prefix() -> str:
    """Prefix of every namespace in this session (what the final sweep removes)."""
    return f"t-{uuid.uuid4().hex[:6]}"


Ctl = Callable[..., Awaitable[str]]
"""Runs ``rabbitmqctl`` with the given arguments where the broker is; returns stdout."""


@dataclass(frozen=True)
class AmqpBroker:
    url: str
    rabbitmqctl: Ctl | None
    """None when no ``rabbitmqctl`` can reach the broker (a remote URL)."""


async def _local_ctl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


def _is_local(url: str) -> bool:
    return URL(url).host in {"127.0.0.1", "localhost", "::1"} and bool(shutil.which("rabbitmqctl"))


@pytest.fixture(scope="session")
def amqp_broker(session_prefix: str) -> Iterator[AmqpBroker]:
    """A RabbitMQ to test against, or skip (fail under ``BOSON_REQUIRE_BROKER=1``)."""
    url = os.environ.get("BOSON_TEST_AMQP_URL")
    if url:
        yield AmqpBroker(url, _local_ctl if _is_local(url) else None)
        _sweep(url, session_prefix)
        return
    if _docker_answers():
        from testcontainers.community.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-alpine") as container:

            async def container_ctl(*args: str) -> str:
                result = await asyncio.to_thread(container.exec, ["rabbitmqctl", *args])
                if result.exit_code != 0:
                    raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed in the container")
                return bytes(result.output).decode()

            host = container.get_container_host_ip()
            port = container.get_exposed_port(container.port)
            user, password = container.username, container.password
            yield AmqpBroker(f"amqp://{user}:{password}@{host}:{port}/", container_ctl)
        return
    reason = "no RabbitMQ: BOSON_TEST_AMQP_URL is unset and no Docker engine answers"
    if os.environ.get("BOSON_REQUIRE_BROKER") == "1":
        pytest.fail(f"BOSON_REQUIRE_BROKER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def amqp_url(amqp_broker: AmqpBroker) -> str:
    """The test broker's URL (see :func:`amqp_broker`)."""
    return amqp_broker.url


def _sweep(url: str, prefix: str) -> None:
    """Delete what this session left on a local broker (a safety net)."""
    if not _is_local(url):
        return
    leftovers = Declared()
    for what, target in (("queues", leftovers.queues), ("exchanges", leftovers.exchanges)):
        try:
            out = subprocess.run(
                ["rabbitmqctl", f"list_{what}", "name", "--formatter", "json", "-q"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return
        target.update(row["name"] for row in json.loads(out) if row["name"].startswith(prefix))
    if leftovers.queues or leftovers.exchanges:
        asyncio.run(_delete_declared(url, leftovers))


@dataclass
class Declared:
    """Names a test declared, to delete afterwards."""

    queues: set[str] = field(default_factory=set)
    exchanges: set[str] = field(default_factory=set)

    def track(self, topology: Topology) -> None:
        self.queues.update(queue.name for queue in topology.queues)
        self.exchanges.update(exchange.name for exchange in topology.exchanges)


async def _delete_declared(url: str, declared: Declared) -> None:
    transport = AmqpTransport(url, connection_name="boson-test-cleanup", op_timeout=10)
    await transport.connect()
    try:
        for queue in sorted(declared.queues):
            await transport.delete_queue(queue)
        for exchange in sorted(declared.exchanges):
            await transport.delete_exchange(exchange)
    finally:
        await transport.close()


@pytest.fixture
def namespace(session_prefix: str) -> str:
    """A namespace no other test uses."""
    return f"{session_prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def declared() -> Declared:
    """What this test declared (transports of ``transport_factory`` record here)."""
    return Declared()


class TrackingTransport:
    """A transport that records what it declares; ``inner`` is the real one."""

    def __init__(self, inner: Transport, declared: Declared, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self._declared = declared

    @property
    def is_connected(self) -> bool:
        return self.inner.is_connected

    def watch_connection(self, listener: ConnectionListener) -> None:
        self.inner.watch_connection(listener)

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def declare(self, topology: Topology) -> None:
        self._declared.track(topology)
        await self.inner.declare(topology)

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
        await self.inner.publish(
            exchange,
            routing_key,
            body,
            headers=headers,
            message_id=message_id,
            mandatory=mandatory,
        )

    async def consume(
        self, queue: str, handler: DeliveryHandler, *, prefetch: int, no_ack: bool = False
    ) -> Subscription:
        return await self.inner.consume(queue, handler, prefetch=prefetch, no_ack=no_ack)

    async def queue_depth(self, queue: str) -> int:
        return await self.inner.queue_depth(queue)

    async def queue_depth_if_present(self, queue: str) -> int | None:
        return await self.inner.queue_depth_if_present(queue)

    async def queue_consumers(self, queue: str) -> int:
        return await self.inner.queue_consumers(queue)

    async def delete_queue(self, queue: str) -> None:
        await self.inner.delete_queue(queue)

    async def delete_exchange(self, exchange: str) -> None:
        await self.inner.delete_exchange(exchange)


TransportFactory = Callable[[], Awaitable[TrackingTransport]]


@dataclass(frozen=True)
class TransportKind:
    name: str
    url: str | None = None
    rabbitmqctl: Ctl | None = None


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("amqp", marks=pytest.mark.broker)],
)
def transport_kind(request: pytest.FixtureRequest) -> TransportKind:
    """Which transport a conformance case runs on (the AMQP one needs the broker)."""
    if request.param == "amqp":
        broker: AmqpBroker = request.getfixturevalue("amqp_broker")
        return TransportKind("amqp", broker.url, broker.rabbitmqctl)
    return TransportKind("memory")


@pytest.fixture
async def transport_factory(
    transport_kind: TransportKind, namespace: str, declared: Declared
) -> AsyncIterator[TransportFactory]:
    """Makes connected transports ("connections") to one broker; closes them after."""
    broker = MemoryBroker()
    made: list[TrackingTransport] = []

    async def make() -> TrackingTransport:
        inner: Transport
        if transport_kind.url is None:
            inner = MemoryTransport(broker)
        else:
            inner = AmqpTransport(
                transport_kind.url,
                connection_name=f"boson-test {namespace}",
                confirm_timeout=10,
                op_timeout=10,
                reconnect_interval=0.3,
            )
        transport = TrackingTransport(inner, declared, transport_kind.name)
        await transport.connect()
        made.append(transport)
        return transport

    try:
        yield make
    finally:
        for transport in made:
            with contextlib.suppress(Exception):
                await transport.close()
        broker.close()
        if transport_kind.url is not None and (declared.queues or declared.exchanges):
            await _delete_declared(transport_kind.url, declared)


__all__ = [
    "AmqpBroker",
    "Ctl",
    "Declared",
    "TrackingTransport",
    "TransportFactory",
    "TransportKind",
]


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A PostgreSQL account that may create databases, or skip (fail in CI)."""
    url = os.environ.get("BOSON_TEST_DATABASE_URL")
    if url:
        return url
    reason = "no PostgreSQL: set BOSON_TEST_DATABASE_URL"
    if os.environ.get("BOSON_REQUIRE_DATABASE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_admin_url: str, session_prefix: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (dropped after)."""
    from tests.support.database import create_database, drop_database

    prefix = "boson_" + session_prefix.replace("-", "_")
    url = asyncio.run(create_database(postgres_admin_url, prefix))
    try:
        yield url
    finally:
        asyncio.run(drop_database(postgres_admin_url, url))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('record')}/records.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(autouse=True)
def _private_record_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep every test's task record out of the user's own data directory."""
    if "BOSON_DATABASE_URL" not in os.environ:
        directory = tmp_path_factory.mktemp("default-record")
        monkeypatch.setenv("BOSON_DATABASE_URL", f"sqlite:///{directory}/records.sqlite3")
