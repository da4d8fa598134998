"""Wrong broker credentials are a configuration error, reported at once."""

from __future__ import annotations

import time

import pytest
from yarl import URL

from boson_shared.bus.amqp import AmqpTransport
from boson_shared.errors import ConfigError


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
