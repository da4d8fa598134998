"""``python -m boson_services.executor``: settings → logging → run."""

from __future__ import annotations

import sys

from boson_services.executor.app import create
from boson_services.executor.settings import ExecutorSettings
from boson_shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, ExecutorSettings(), "executor"))
