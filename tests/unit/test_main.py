"""Starting a service process: keys required, a late broker waited for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.errors import BrokerUnavailableError, ConfigError
from boson_shared.runtime.main import connect_with_retry, require_broker_and_keys
from boson_shared.settings import BosonSettings
from tests.support.cluster import ROOT


class LateTransport(MemoryTransport):
    """Refuses ``failures`` connection attempts, then connects."""

    def __init__(self, failures: int) -> None:
        super().__init__(MemoryBroker())
        self.failures = failures
        self.attempts = 0

    async def connect(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise BrokerUnavailableError("connection refused")
        await super().connect()


async def test_a_late_broker_is_waited_for() -> None:
    transport = LateTransport(failures=2)
    await connect_with_retry(transport, within_s=10)
    assert transport.is_connected
    assert transport.attempts == 3
    await transport.close()


async def test_a_broker_that_never_comes_is_a_typed_error() -> None:
    transport = LateTransport(failures=1_000)
    with pytest.raises(BrokerUnavailableError):
        await connect_with_retry(transport, within_s=0.6)
    assert 2 <= transport.attempts <= 4


def test_a_broker_without_keys_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="BOSON_KEYS"):
        require_broker_and_keys(BosonSettings(broker_url=SecretStr("amqp://u:p@127.0.0.1:1/")))
    with pytest.raises(ConfigError, match="BOSON_BROKER_URL"):
        require_broker_and_keys(BosonSettings())


def test_a_service_started_without_a_key_exits_at_once() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    env["BOSON_BROKER_URL"] = "amqp://guest:secret-pw@127.0.0.1:5672/"
    completed = subprocess.run(
        [sys.executable, "-m", "boson", "run", "scheduler"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert b"no encryption key configured" in completed.stderr
    assert b"secret-pw" not in completed.stderr + completed.stdout
