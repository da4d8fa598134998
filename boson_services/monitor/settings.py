"""The monitor's settings (``BOSON_`` variables)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, SecretStr

from boson_shared.contract.channel_types import CLIENT_QUEUE_EXPIRES_MS
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
    abandoned_reply_queue_s: Annotated[float, Field(gt=0)] = CLIENT_QUEUE_EXPIRES_MS / 1000
    """A client's reply queue without a consumer this long is deleted, with
    any results in it (``boson_services/monitor/reply_queues.py``)."""
    reply_queue_sweep_interval_s: Annotated[float, Field(gt=0)] = 300.0
    """How often the monitor looks for such queues."""

    result_ttl: Annotated[float, Field(gt=0)] = 7 * 24 * 3600.0
    """Seconds a task's record (and the blobs only it refers to) is kept
    after the task ends (``BOSON_RESULT_TTL``)."""
    record_inline_max_bytes: Annotated[int, Field(ge=0)] = 256 * 1024
    """Outputs up to this size (msgpack) are kept in the record itself; larger
    ones travel through the transfer store and are kept by reference."""
    record_batch_max_items: Annotated[int, Field(ge=1, le=100_000)] = 2000
    """Events written to the record in one transaction at most."""
    record_batch_linger_ms: Annotated[float, Field(ge=0, le=5000)] = 50.0
    """How long the record's writer waits before each transaction for more
    events to share it (unless a full batch waits already): the later steps
    of the same tasks often arrive within it, and each task's row is then
    written once for several steps."""
    record_prefetch: Annotated[int, Field(ge=1, le=65_535)] = 64
    """Unacknowledged envelopes of record events one monitor holds."""
    record_start_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """How long a starting monitor waits for the record's database before it
    starts without the record (and keeps trying in the background)."""
    record_check_interval_s: Annotated[float, Field(gt=0)] = 2.0
    """How often a monitor whose database is away checks it again."""
    retention_interval_s: Annotated[float, Field(gt=0)] = 300.0
    tenants_sample_interval_s: Annotated[float, Field(ge=1, le=86_400)] = 30.0
    """The record keeps one sample of each tenant's share of the pool per
    this many seconds (``boson tenants --history``); give every monitor the
    same value, so that they agree on the slots."""
    referenced_blobs_max: Annotated[int, Field(ge=1, le=200_000)] = 100_000
    """Digests one :class:`BlobsReferenced` lists at most; past it the list is
    marked incomplete and the transfer service deletes nothing."""

    dashboard_host: str = "127.0.0.1"
    dashboard_port: Annotated[int, Field(ge=0, le=65_535)] | None = None
    """The web dashboard and ``/api`` (unset: off; 0: any free port, logged)."""
    api_token: SecretStr | None = None
    """Bearer token of the dashboard's API: needed for actions always, and for
    reading too when the dashboard listens beyond loopback."""
    dashboard_requests_per_s: Annotated[float, Field(gt=0)] = 50.0
    """Requests one client address may make per second (a burst of twice that)."""
    dashboard_max_body_bytes: Annotated[int, Field(ge=256, le=1024 * 1024)] = 16 * 1024
    dashboard_live_interval_s: Annotated[float, Field(gt=0)] = 2.0
    """How often an open page is told what changed (server-sent events)."""
    dashboard_history_interval_s: Annotated[float, Field(gt=0)] = 10.0
    """One point of the last hour's history per interval (bounded: an hour of them)."""
    dashboard_record_connections: Annotated[int, Field(ge=1, le=100)] = 10
    """Connections the dashboard keeps open to the task record: its reads at
    once (more wait for one). Kept, never opened per burst and closed after."""

    def dashboard_refusal(self) -> str | None:
        """Why the dashboard must not start as configured (None: it may)."""
        if self.dashboard_port is None or is_loopback(self.dashboard_host):
            return None
        if self.api_token is not None and self.api_token.get_secret_value():
            return None
        return (
            f"the dashboard would listen on {self.dashboard_host}, beyond loopback, "
            "where anyone could read it: set BOSON_API_TOKEN "
            "(or keep BOSON_DASHBOARD_HOST=127.0.0.1)"
        )

    @property
    def down_after_s(self) -> float:
        return self.heartbeat_interval_s * self.missed_heartbeats


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["MonitorSettings", "is_loopback"]
