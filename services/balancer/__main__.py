"""``python -m services.balancer``: settings → logging → run."""

from __future__ import annotations

import sys

from services.balancer.app import create
from services.balancer.settings import BalancerSettings
from shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, BalancerSettings(), "balancer"))
