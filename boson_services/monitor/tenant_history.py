"""The monitor's share of the tenants' history: samples of the balancer's reports.

Every monitor takes every ``tenants.report`` (its own queue); a periodic
loop offers the latest one to the record here, and only the first offered
of each sampling slot is written (:mod:`boson_shared.record.tenant_samples`), so one monitor makes
one write per slot and competing monitors store each sample once. A report
whose write fails (the database away) is dropped: the next slot's sample is
written when the database answers again, and the gauges carry on meanwhile.
"""

from __future__ import annotations

import logging

from boson_shared.contract.tenants_report import TenantsReport
from boson_shared.errors import RecordUnavailableError
from boson_shared.record.store import RecordStore
from boson_shared.record.tenant_samples import record_report, slot_of

logger = logging.getLogger(__name__)


class TenantHistory:
    """Writes one sample per tenant per slot of ``slot_s`` seconds."""

    def __init__(self, store: RecordStore, *, slot_s: float) -> None:
        self.store = store
        self.slot_s = slot_s
        self._last_slot: float | None = None
        self.written = 0
        """Samples this monitor stored (another monitor may have stored the rest)."""
        self.failed = 0

    async def observe(self, report: TenantsReport) -> None:
        slot = slot_of(report.reported_at, self.slot_s)
        if self._last_slot is not None and slot <= self._last_slot:
            return
        self._last_slot = slot
        try:
            self.written += await record_report(self.store, report, slot_s=self.slot_s)
        except RecordUnavailableError as error:
            self.failed += 1
            logger.warning("tenant sample not recorded: %s", error)


__all__ = ["TenantHistory"]
