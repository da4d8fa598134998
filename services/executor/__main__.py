"""``python -m services.executor``: settings → logging → run."""

from __future__ import annotations

import sys

from services.executor.app import create
from services.executor.settings import ExecutorSettings
from shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, ExecutorSettings(), "executor"))
