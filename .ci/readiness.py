"""Poll a service until one real session with it opens, for the CI readiness scripts.

A listening port is not enough: a server accepts TCP while it is still
starting up. Each script names its environment variable, a coroutine that
opens (and closes) one real session, and the words it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any


def wait_until_ready(
    url_variable: str,
    try_once: Callable[[str], Coroutine[Any, Any, None]],
    *,
    ready: str,
    not_ready: str,
) -> int:
    """Exit code 0 once ``try_once`` succeeds within ``--timeout`` seconds, else 1.

    Exit code 2, with one line saying so, when the URL variable is unset.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    url = os.environ.get(url_variable)
    if not url:
        print(f"{not_ready}: {url_variable} is not set", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.timeout
    last = "never tried"
    while time.monotonic() < deadline:
        try:
            asyncio.run(try_once(url))
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
            time.sleep(1)
            continue
        print(ready)
        return 0
    print(f"{not_ready} within {args.timeout:.0f}s ({last})", file=sys.stderr)
    return 1


__all__ = ["wait_until_ready"]
