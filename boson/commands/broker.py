"""The broker a command talks to: ``BOSON_BROKER_URL``, or its ``--broker``."""

from __future__ import annotations

import argparse

from pydantic import SecretStr

from boson_shared.errors import ConfigError
from boson_shared.settings import BosonSettings


def add_cluster_arguments(
    parser: argparse.ArgumentParser,
    *,
    timeout_s: float,
    json_help: str | None = None,
    timeout_help: str | None = None,
) -> None:
    """The ``--broker``, ``--json`` and ``--timeout`` of a command that asks a running cluster."""
    parser.add_argument("--broker", help="amqp://… (default BOSON_BROKER_URL)")
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--timeout", type=float, default=timeout_s, help=timeout_help)


def settings_with_broker(broker: str | None) -> BosonSettings:
    """Settings from the environment, with ``--broker`` (when given) as the broker."""
    settings = BosonSettings()
    if broker is not None:
        settings = settings.model_copy(update={"broker_url": SecretStr(broker)})
    return settings


def cluster_settings(broker: str | None, command: str) -> BosonSettings:
    """As :func:`settings_with_broker`, for a command that needs a running cluster."""
    settings = settings_with_broker(broker)
    if settings.broker_url is None:
        raise ConfigError(f"{command} needs a running cluster: set BOSON_BROKER_URL or --broker")
    return settings


__all__ = ["add_cluster_arguments", "cluster_settings", "settings_with_broker"]
