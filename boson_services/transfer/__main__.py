"""``python -m boson_services.transfer``: settings → logging → run."""

from __future__ import annotations

import sys

from boson_services.transfer.app import create
from boson_services.transfer.settings import TransferSettings
from boson_shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, TransferSettings(), "transfer"))
