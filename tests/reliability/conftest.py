"""Fixtures of the reliability suite: a process cluster torn down whatever happens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import ProcessCluster


@pytest.fixture
def cluster(amqp_url: str, namespace: str, tmp_path: Path) -> Iterator[ProcessCluster]:
    """Service processes of this test (logs in ``tmp_path``); all stopped afterwards."""
    processes = ProcessCluster(amqp_url, namespace, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()
