"""The balancer's settings (``BOSON_`` variables)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from boson_shared.scheduling.head_reservation import RESERVATION_LAPSE_S
from boson_shared.settings import BosonSettings


class BalancerSettings(BosonSettings):
    credit_per_slot: Annotated[int, Field(ge=1, le=64)] = 2
    """Tasks a node may hold (running plus queued) per slot; matches the
    executor's prefetch, so a node queue stays near empty. The least a node
    gets: short tasks widen it up to ``max_credit_per_slot``."""
    max_credit_per_slot: Annotated[int, Field(ge=1, le=1024)] = 64
    """The most a node may hold per slot when its tasks are short."""
    queue_budget_s: Annotated[float, Field(gt=0)] = 0.05
    """Queued work per slot a node may hold, in seconds of its recent task time:
    the credit window is this ÷ task time (within the bounds above)."""
    hot_threshold: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Measured utilisation above which a node gets no new work."""
    retarget_after_s: Annotated[float, Field(gt=0)] = 2.0
    """Held work waiting this long for its busy placed node joins the flexible
    queue (another node with spare credit takes it at once anyway)."""
    park_after_s: Annotated[float, Field(gt=0)] = 600.0
    """Re-publish work held this long (RabbitMQ's consumer timeout is 30 min)."""
    max_held: Annotated[int, Field(ge=1, le=65_535)] = 10_000
    imbalance_threshold: Annotated[float, Field(gt=0)] = 0.25
    """Coefficient of variation of measured utilisation that triggers rebalancing."""
    reservation_lapse_s: Annotated[float, Field(gt=0)] = RESERVATION_LAPSE_S
    """How long the head of the waiting order's reservation holds before it is
    remade from fresh run-time estimates (docs/design.md#no-starvation)."""
    report_interval_s: Annotated[float, Field(gt=0)] = 1.0
    tenants_report_interval_s: Annotated[float, Field(gt=0)] = 2.0
    """How often the active balancer publishes its ``tenants.report`` (and at
    once after preempting)."""
    subscriber_expires_s: Annotated[float, Field(gt=0)] = 600.0


__all__ = ["BalancerSettings"]
