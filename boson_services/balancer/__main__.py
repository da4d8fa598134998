"""``python -m boson_services.balancer``: settings → logging → run."""

from __future__ import annotations

import sys

from boson_services.balancer.app import create
from boson_services.balancer.settings import BalancerSettings
from boson_shared.runtime.main import main

if __name__ == "__main__":
    sys.exit(main(create, BalancerSettings(), "balancer"))
