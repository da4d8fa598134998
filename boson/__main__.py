"""``python -m boson``: the same as the ``boson`` command."""

from __future__ import annotations

import sys

from boson.cli import main

if __name__ == "__main__":
    sys.exit(main())
