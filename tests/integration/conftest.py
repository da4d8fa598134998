"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import TransportFactory
from tests.support.control_plane import ControlPlane


@pytest.fixture
async def plane(transport_factory: TransportFactory, namespace: str) -> AsyncIterator[ControlPlane]:
    plane = ControlPlane(transport_factory, namespace)
    try:
        yield plane
    finally:
        await plane.close()


__all__ = ["plane"]
