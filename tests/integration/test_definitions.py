"""definitions.json against the real broker: what the code declares, as RabbitMQ lists it.

The shared topology is declared in a fresh namespace, listed back with
``rabbitmqctl`` and renamed to the default namespace; the result must be
exactly what ``deploy/rabbitmq/definitions.json`` makes the broker load.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from boson_shared.bus.amqp import AmqpTransport
from boson_shared.settings import BosonSettings
from tests.conftest import AmqpBroker
from tests.unit.deploy_files import DEFINITIONS

pytestmark = pytest.mark.broker

Row = dict[str, Any]


def _rename(value: Any, namespace: str) -> Any:
    if isinstance(value, str) and value.startswith(f"{namespace}."):
        return "boson." + value.removeprefix(f"{namespace}.")
    return value


def _arguments(rows: list[list[Any]], namespace: str) -> dict[str, Any]:
    """rabbitmqctl lists arguments as [name, type, value] triples."""
    return {name: _rename(value, namespace) for name, _type, value in rows}


async def _listed(broker: AmqpBroker, what: str, columns: str) -> list[Row]:
    assert broker.rabbitmqctl is not None
    out = await broker.rabbitmqctl(f"list_{what}", *columns.split(), "--formatter", "json", "-q")
    rows: list[Row] = json.loads(out)
    return rows


async def test_definitions_json_is_what_the_code_declares_on_the_broker(
    amqp_broker: AmqpBroker, amqp_url: str, namespace: str
) -> None:
    if amqp_broker.rabbitmqctl is None:
        pytest.skip("rabbitmqctl cannot reach this broker (a remote BOSON_TEST_AMQP_URL)")
    topology = BosonSettings.model_construct(namespace=namespace).names().shared_queues()
    transport = AmqpTransport(amqp_url, connection_name=f"boson-test {namespace}")
    await transport.connect()
    try:
        await transport.declare(topology)
        queues = await _listed(amqp_broker, "queues", "name durable auto_delete arguments")
        exchanges = await _listed(
            amqp_broker, "exchanges", "name type durable auto_delete internal arguments"
        )
        bindings = await _listed(
            amqp_broker,
            "bindings",
            "source_name source_kind destination_name destination_kind routing_key arguments",
        )
    finally:
        for queue in topology.queues:
            await transport.delete_queue(queue.name)
        for exchange in topology.exchanges:
            await transport.delete_exchange(exchange.name)
        await transport.close()

    ours = f"{namespace}."
    on_broker = {
        "exchanges": sorted(
            (
                {
                    "name": _rename(row["name"], namespace),
                    "type": row["type"],
                    "durable": row["durable"],
                    "auto_delete": row["auto_delete"],
                    "internal": row["internal"],
                    "arguments": _arguments(row["arguments"], namespace),
                }
                for row in exchanges
                if row["name"].startswith(ours)
            ),
            key=lambda row: row["name"],
        ),
        "queues": sorted(
            (
                {
                    "name": _rename(row["name"], namespace),
                    "durable": row["durable"],
                    "auto_delete": row["auto_delete"],
                    "arguments": _arguments(row["arguments"], namespace),
                }
                for row in queues
                if row["name"].startswith(ours)
            ),
            key=lambda row: row["name"],
        ),
        "bindings": sorted(
            (
                {
                    "source": _rename(row["source_name"], namespace),
                    "destination": _rename(row["destination_name"], namespace),
                    "destination_type": row["destination_kind"],
                    "routing_key": _rename(row["routing_key"], namespace),
                    "arguments": _arguments(row["arguments"], namespace),
                }
                # The default exchange's implicit bindings are not definitions.
                for row in bindings
                if row["source_name"].startswith(ours)
            ),
            key=lambda row: (row["source"], row["destination"], row["routing_key"]),
        ),
    }

    committed = json.loads(DEFINITIONS.read_text())
    assert [vhost["name"] for vhost in committed["vhosts"]] == ["/"]
    for kind in ("exchanges", "queues", "bindings"):
        for row in committed[kind]:
            assert row.pop("vhost") == "/"
        assert on_broker[kind] == committed[kind], kind
