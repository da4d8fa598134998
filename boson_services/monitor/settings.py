"""The monitor's settings (``BOSON_`` variables)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from boson_shared.scheduling.probation import PROBATION_S
from boson_shared.settings import BosonSettings


class MonitorSettings(BosonSettings):
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 1.0
    """How often executors heartbeat (they read the same variable)."""
    missed_heartbeats: Annotated[int, Field(ge=1)] = 3
    """A node is down after this many heartbeat intervals without one."""
    snapshot_interval_s: Annotated[float, Field(gt=0)] = 1.0
    overload_threshold: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Measured CPU or memory utilisation that counts as overload..."""
    overload_sustain_s: Annotated[float, Field(ge=0)] = 10.0
    """...when it lasts this long."""
    probation_s: Annotated[float, Field(ge=0)] = PROBATION_S
    """A node back after failing takes no new work this long (doubled per recent
    failure; 0: never on probation; see ``boson_shared/scheduling/probation.py``)."""
    backlog_alert_threshold: Annotated[int, Field(ge=1)] = 1000
    queue_poll_interval_s: Annotated[float, Field(gt=0)] = 5.0
    subscriber_expires_s: Annotated[float, Field(gt=0)] = 600.0

    @property
    def down_after_s(self) -> float:
        return self.heartbeat_interval_s * self.missed_heartbeats


__all__ = ["MonitorSettings"]
