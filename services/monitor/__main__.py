"""``python -m services.monitor``: settings → logging → run."""

from __future__ import annotations

import sys

from services.monitor.app import create
from services.monitor.settings import MonitorSettings
from shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, MonitorSettings(), "monitor"))
