"""``python -m boson_services.monitor``: settings → logging → run."""

from __future__ import annotations

import sys

from boson_services.monitor.app import create
from boson_services.monitor.settings import MonitorSettings
from boson_shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, MonitorSettings(), "monitor"))
