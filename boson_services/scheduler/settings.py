"""The scheduler's settings (``BOSON_`` variables)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from boson_shared.scheduling.scores import DEFAULT_STRATEGY, Strategy
from boson_shared.settings import BosonSettings


class SchedulerSettings(BosonSettings):
    strategy: Strategy = DEFAULT_STRATEGY
    """``binpack-fgd``: binpack that does not strand the bottleneck resource.
    ``binpack`` places far faster on very large clusters and strands far more
    (``docs/scheduling.md``)."""
    demand_model: str = "linear"
    """``linear``, ``online`` or ``package.module:factory``."""
    reservation_ttl_s: Annotated[float, Field(gt=0)] = 10.0
    """How long a placement holds capacity before a snapshot must show it."""
    end_aware: bool = True
    """On tables with GPUs, place long work by when it is expected to end
    (``BOSON_END_AWARE=false`` turns it off): each handler's recent run times,
    or a task's ``timeout_s`` before its handler reports any, say how long it
    runs; work expected to run over a day goes to the smallest nodes that fit
    it (``docs/design.md``, end-aware placement)."""
    subscriber_expires_s: Annotated[float, Field(gt=0)] = 600.0


__all__ = ["SchedulerSettings"]
