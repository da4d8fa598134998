"""Wrong broker credentials are a configuration error, reported at once."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from yarl import URL

from boson_shared.bus.amqp import AmqpTransport
from boson_shared.errors import BrokerUnavailableError, ConfigError


@pytest.mark.broker
@pytest.mark.timeout(30)
async def test_wrong_credentials_fail_fast_without_the_password(amqp_url: str) -> None:
    wrong = str(URL(amqp_url).with_user("guest").with_password("not-the-password-42"))
    transport = AmqpTransport(wrong, connection_name="boson-auth-test")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="refused the credentials") as caught:
        await transport.connect()
    assert time.monotonic() - started < 10
    assert "not-the-password-42" not in str(caught.value)
    assert not transport.is_connected


@pytest.mark.broker
@pytest.mark.timeout(30)
async def test_a_vhost_that_does_not_exist_is_named(amqp_url: str) -> None:
    wrong = str(URL(amqp_url).with_path("/no-such-vhost-27"))
    transport = AmqpTransport(wrong, connection_name="boson-vhost-test")
    with pytest.raises(ConfigError) as caught:
        await transport.connect()
    assert str(caught.value).endswith(
        "refused to open vhost 'no-such-vhost-27': it does not exist or this user may not use it"
    )
    assert not transport.is_connected


@pytest.mark.timeout(30)
async def test_a_refused_connection_is_one_error_and_no_log_noise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    transport = AmqpTransport(f"amqp://guest:guest@127.0.0.1:{port}/", connection_name="x")
    with caplog.at_level(logging.DEBUG), pytest.raises(BrokerUnavailableError):
        await transport.connect()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
