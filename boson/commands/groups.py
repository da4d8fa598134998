"""A ``boson`` command that only groups actions (``boson keys``, ``boson spec``)."""

from __future__ import annotations

import argparse


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def command_group(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    metavar: str,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``name`` and return its actions; alone, it prints its help and exits with 2."""
    group = subparsers.add_parser(name, help=help)
    group.set_defaults(func=lambda _args: _usage(group))
    return group.add_subparsers(dest=f"{name}_command", metavar=metavar)


__all__ = ["command_group"]
