"""``python -m services.executor``: settings → logging → run."""

from __future__ import annotations

import sys

from shared.runtime.main import main

from services.executor.app import create
from services.executor.settings import ExecutorSettings

if __name__ == "__main__":
    sys.exit(main(create, ExecutorSettings(), "executor"))
