"""The ``boson`` command: one sub-command per module in :mod:`boson.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from boson_shared.errors import BosonError
from boson_shared.logs import configure_logging
from boson_shared.runtime.compiled import STALE_HINT, stale_modules

# Each module exposes ``register(subparsers)``; its parsers set ``func``.
COMMAND_MODULES = (
    "boson.commands.demo",
    "boson.commands.submit",
    "boson.commands.run",
    "boson.commands.status",
    "boson.commands.tenants",
    "boson.commands.health",
    "boson.commands.simulate",
    "boson.commands.keys",
    "boson.commands.tasks",
    "boson.commands.cancel",
    "boson.commands.spec",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boson",
        description="Boson: schedule AI and data-analysis tasks over RabbitMQ.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Like celery and uvicorn: modules named on the command line (handler
    # modules) resolve from the directory the command runs in.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    args = parser.parse_args(argv)
    level = ("WARNING", "INFO", "DEBUG")[min(args.verbose, 2)]
    configure_logging(f"boson-{args.command}", level=level)
    stale = stale_modules()
    if stale:
        # An editable install whose compiled modules predate an edit runs the old code.
        print(
            f"boson: warning: compiled from older sources: {', '.join(stale)}: {STALE_HINT}",
            file=sys.stderr,
        )
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BosonError as error:
        # Typed errors are the user's to act on: one clear line, no traceback.
        print(f"boson: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except TimeoutError as error:
        # A bounded wait ran out (the demo's steps, a start-up): what it waited for.
        print(f"boson: timed out: {error or 'a wait ran out'}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main"]
