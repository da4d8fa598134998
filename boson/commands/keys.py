"""``boson keys generate``: a fresh envelope key in the format ``BOSON_KEYS`` takes."""

from __future__ import annotations

import argparse
import sys

from boson.commands.groups import command_group
from boson_shared.contract.keyring import generate_key_spec


def _generate(args: argparse.Namespace) -> int:
    spec = generate_key_spec(args.key_id)
    key_id = spec.partition(":")[0]
    print(spec)
    # Guidance on stderr, so `boson keys generate > key` captures the key line only.
    print(
        "# Fresh install: BOSON_KEYS='<the line above>'."
        "\n# Rotation: first append it everywhere (decrypt-only):"
        f"\n#   BOSON_KEYS='<current keys>,{key_id}:…'"
        f"\n# then make it active: BOSON_ACTIVE_KEY_ID={key_id}"
        "\n# then, once no message under the old key is in flight, remove the old key.",
        file=sys.stderr,
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` (with its ``generate`` sub-command) to the ``boson`` parser."""
    actions = command_group(
        subparsers, "keys", help="manage envelope encryption keys", metavar="ACTION"
    )
    generate = actions.add_parser(
        "generate",
        help="print a new key line for BOSON_KEYS",
        description="Print a new random 256-bit key as id:base64key, the BOSON_KEYS format.",
    )
    generate.add_argument(
        "--id",
        dest="key_id",
        default=None,
        help="key id (1-32 characters of A-Z a-z 0-9 _ -); default k<date>-<random>",
    )
    generate.set_defaults(func=_generate)


__all__ = ["register"]
