"""``python -m services.scheduler``: settings → logging → run."""

from __future__ import annotations

import sys

from services.scheduler.app import create
from services.scheduler.settings import SchedulerSettings
from shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, SchedulerSettings(), "scheduler"))
