"""Two clients under one client id may be connected at once.

Rolling keys out does exactly that: a client under the new key connects
while the one under the old key still waits for its results. Each watches
the dead letters on a queue of its own (exclusive to its connection).
"""

from __future__ import annotations

from boson.client import Client
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.settings import BosonSettings
from tests.conftest import TransportFactory

KEYS = Keyring({"k1": bytes(range(32))})


async def test_a_second_client_under_the_same_id_starts_beside_the_first(
    transport_factory: TransportFactory, namespace: str
) -> None:
    settings = BosonSettings(namespace=namespace, instance_id="c")
    first = Client(
        settings,
        await transport_factory(),
        EnvelopeCodec(KEYS),
        client_id="same",
        owns_transport=False,
    )
    second = Client(
        settings,
        await transport_factory(),
        EnvelopeCodec(KEYS),
        client_id="same",
        owns_transport=False,
    )
    await first.start()
    try:
        await second.start()
        await second.close()
    finally:
        await first.close()
