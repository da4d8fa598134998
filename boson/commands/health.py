"""``boson health``: exit 0 when a service's health endpoint (or the broker) answers.

``boson health --port 8080`` asks the service in this container; with no
port it opens (and closes) a real connection to the broker. Container
HEALTHCHECKs and Kubernetes probes run it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request

from boson_shared.bus.factory import transport_from_url
from boson_shared.errors import BosonError, ConfigError
from boson_shared.runtime.bounded_run import run_bounded
from boson_shared.settings import BosonSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("health", help="check a service's health endpoint or the broker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="the service's health port (BOSON_HEALTH_PORT)")
    parser.add_argument("--broker", help="check this broker instead (default BOSON_BROKER_URL)")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = BosonSettings()
    port = args.port if args.port is not None else settings.health_port
    if port is not None and args.broker is None:
        return check_endpoint(args.host, port, args.timeout)
    url = args.broker or (settings.broker_url.get_secret_value() if settings.broker_url else None)
    if url is None:
        raise ConfigError(
            "nothing to check: give --port (a service) or --broker / BOSON_BROKER_URL"
        )
    return run_bounded(check_broker(url, args.timeout))


def check_endpoint(host: str, port: int, timeout: float) -> int:
    url = f"http://{host}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        print(f"unhealthy: {url} answered {error.code}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    print(f"healthy: {body.get('service')} ({body.get('status')})")
    return 0


async def check_broker(url: str, timeout: float) -> int:
    transport = transport_from_url(url, connection_name="boson-health")
    try:
        async with asyncio.timeout(timeout):
            await transport.connect()
    except (BosonError, TimeoutError) as error:
        print(f"unhealthy: broker: {error}", file=sys.stderr)
        return 1
    finally:
        await transport.close()
    print("healthy: broker answers")
    return 0


__all__ = ["check_broker", "check_endpoint", "register", "run"]
