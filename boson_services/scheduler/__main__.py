"""``python -m boson_services.scheduler``: settings → logging → run."""

from __future__ import annotations

import sys

from boson_services.scheduler.app import create
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, SchedulerSettings(), "scheduler"))
