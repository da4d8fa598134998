"""``python -m services.monitor``: settings → logging → run."""

from __future__ import annotations

import sys

from shared.runtime.main import main

from services.monitor.app import create
from services.monitor.settings import MonitorSettings

if __name__ == "__main__":
    sys.exit(main(create, MonitorSettings(), "monitor"))
