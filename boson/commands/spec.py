"""``boson spec asyncapi``: the bus's AsyncAPI document, generated from the code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from boson.asyncapi.document import asyncapi_document, render_yaml
from boson.commands.groups import command_group
from boson_shared.errors import ConfigError


def _asyncapi(args: argparse.Namespace) -> int:
    text = render_yaml(asyncapi_document())
    if args.output is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``spec`` (with its ``asyncapi`` sub-command) to the ``boson`` parser."""
    actions = command_group(
        subparsers, "spec", help="print the bus contract for other languages", metavar="FORMAT"
    )
    asyncapi = actions.add_parser(
        "asyncapi",
        help="the AsyncAPI 3.0 document of every channel and message (YAML)",
        description=(
            "Print the AsyncAPI 3.0 document generated from the message models and "
            "the topology (docs/asyncapi.yaml is its committed output)."
        ),
    )
    asyncapi.add_argument(
        "-o", "--output", default=None, help="write to this file instead of stdout"
    )
    asyncapi.set_defaults(func=_asyncapi)


__all__ = ["register"]
