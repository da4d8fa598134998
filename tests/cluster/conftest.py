"""Fixtures of the cluster suite: one three-node RabbitMQ cluster per session.

The cluster starts when the first ``cluster`` test asks for it and is stopped
and deleted at the end of the session whatever happened (see
:mod:`tests.support.rabbit_cluster`). Without root or RabbitMQ on this
machine the tests skip; ``BOSON_REQUIRE_CLUSTER=1`` (CI) makes that a failure.
Each test gets its own namespace and service processes; afterwards every
node is running again and no alarm is left set, for the next test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import record
from tests.support.cluster import ProcessCluster
from tests.support.rabbit_cluster import RabbitCluster, available, make_cluster


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitCluster]:
    """Three clustered RabbitMQ nodes on loopback; never the host's own broker."""
    reason = available()
    if reason is not None:
        if os.environ.get("BOSON_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"BOSON_REQUIRE_CLUSTER=1 but {reason}")
        pytest.skip(reason)
    cluster = make_cluster()
    try:
        record("cluster_startup", {"nodes": len(cluster.nodes), "startup_s": cluster.startup_s})
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def processes(
    rabbit: RabbitCluster, session_prefix: str, tmp_path: Path
) -> Iterator[ProcessCluster]:
    """Service processes on the cluster (URL list of all nodes), stopped afterwards."""
    namespace = f"{session_prefix}-c{uuid.uuid4().hex[:6]}"
    cluster = ProcessCluster(rabbit.url, namespace, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        rabbit.heal()
