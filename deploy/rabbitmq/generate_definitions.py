"""Write ``definitions.json``: the topology the code declares, for the default namespace.

RabbitMQ loads the file at boot (``rabbitmq.conf``), so the shared exchanges
and queues exist, with the right arguments, before any service starts. The
file is generated from :mod:`boson_shared.contract.topology` and committed;
``tests/unit/test_deploy.py`` fails when it drifts from the code.

    python deploy/rabbitmq/generate_definitions.py          # rewrite the file
    python deploy/rabbitmq/generate_definitions.py --check  # exit 1 if stale

Only what is not tied to one node, client or instance is here
(``Names.shared_queues()``): per-node, per-client and per-instance queues
come and go with their owners, which declare them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from boson_shared.contract.topology import Topology
from boson_shared.settings import BosonSettings

DEFINITIONS = Path(__file__).with_name("definitions.json")
VHOST = "/"
"""The vhost of the broker URL in compose and k8s (``amqp://…@rabbitmq:5672/``)."""


def default_topology() -> Topology:
    """What a service with default settings declares in common with every other."""
    # model_construct: field defaults only, never the caller's BOSON_ variables.
    return BosonSettings.model_construct().names().shared_queues()


def definitions(topology: Topology, vhost: str = VHOST) -> dict[str, Any]:
    """``topology`` in RabbitMQ's definitions format, sorted so the file diffs cleanly."""
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": sorted(
            (
                {
                    "name": exchange.name,
                    "vhost": vhost,
                    "type": exchange.type,
                    "durable": exchange.durable,
                    "auto_delete": False,
                    "internal": False,
                    "arguments": exchange.arguments(),
                }
                for exchange in topology.exchanges
            ),
            key=lambda item: item["name"],
        ),
        "queues": sorted(
            (
                {
                    "name": queue.name,
                    "vhost": vhost,
                    "durable": queue.durable,
                    "auto_delete": False,
                    "arguments": dict(sorted(queue.arguments().items())),
                }
                for queue in topology.queues
            ),
            key=lambda item: item["name"],
        ),
        "bindings": sorted(
            (
                {
                    "source": binding.exchange,
                    "vhost": vhost,
                    "destination": binding.queue,
                    "destination_type": "queue",
                    "routing_key": binding.routing_key,
                    "arguments": {},
                }
                for binding in topology.bindings
            ),
            key=lambda item: (item["source"], item["destination"], item["routing_key"]),
        ),
    }


def render(topology: Topology | None = None) -> str:
    """The file's exact text."""
    return json.dumps(definitions(topology or default_topology()), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=DEFINITIONS)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DEFINITIONS", "VHOST", "default_topology", "definitions", "main", "render"]
