"""``python -m services.transfer``: settings → logging → run."""

from __future__ import annotations

import sys

from services.transfer.app import create
from services.transfer.settings import TransferSettings
from shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, TransferSettings(), "transfer"))
