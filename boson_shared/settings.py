"""Settings every Boson process shares, from ``BOSON_`` variables.

Built once in a service's ``__main__`` (or by the launcher) and passed down;
nothing else reads the environment (docs/design.md#configuration). Tests pass values as
keyword arguments. Secrets are ``SecretStr``: they never appear in a repr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

from boson_shared.contract.messages import new_id
from boson_shared.contract.topology import Names, RetryPolicy
from boson_shared.scheduling.admission import DEFAULT_PREEMPT_GRACE_S
from boson_shared.scheduling.tenants import TenantsConfig, load_tenants

Cipher = Literal["aes-256-gcm", "chacha20-poly1305"]
Namespace = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]


class BosonSettings(BaseSettings):
    """Configuration shared by every service, the CLI and the SDK."""

    model_config = SettingsConfigDict(env_prefix="BOSON_", extra="ignore", frozen=True)

    broker_url: SecretStr | None = None
    """``amqp://user:pass@host:5672/vhost``, or a comma-separated list of the
    nodes of a cluster (see :mod:`boson_shared.bus.broker_urls`); unset means
    the embedded broker."""
    namespace: Namespace = "boson"
    keys: SecretStr | None = None
    """Keyring: ``id:base64key[,id:base64key…]`` (``boson keys generate``)."""
    active_key_id: str | None = None
    """The key new messages are encrypted with; default the first listed."""
    cipher: Cipher = "aes-256-gcm"

    max_message_bytes: Annotated[int, Field(ge=4096, le=512 * 1024 * 1024)] = 16 * 1024 * 1024
    compress_min_bytes: Annotated[int, Field(ge=0)] = 4096
    zstd_level: Annotated[int, Field(ge=1, le=19)] = 3

    queue_type: Literal["quorum", "classic"] = "quorum"
    retry_delays_ms: tuple[int, ...] = (1_000, 5_000, 30_000)
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 4
    prefetch: Annotated[int, Field(ge=1, le=65_535)] = 256

    batch_max_items: Annotated[int, Field(ge=1, le=10_000)] = 100
    batch_max_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    batch_max_in_flight: Annotated[int, Field(ge=1, le=64)] = 1
    """Envelopes of one lane awaiting their confirm at once; more messages wait
    and leave together in the next one (the batching window is a confirm).
    One packs the most per envelope, so each task costs the least CPU in the
    services and the broker (docs/performance.md#batching-knobs)."""

    dedup_capacity: Annotated[int, Field(ge=1)] = 100_000
    ingress_max_age_s: Annotated[float, Field(gt=0)] = 24 * 3600.0
    drain_grace_s: Annotated[float, Field(gt=0)] = 30.0
    connect_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    """How long a starting service waits for the broker before giving up."""

    record: bool = True
    """Publish task lifecycle events for the task record the monitors keep."""
    record_linger_ms: Annotated[float, Field(ge=0, le=1000)] = 10.0
    """How long the scheduler and balancer hold a lifecycle event for others
    to share its envelope (``Route.linger_s``): the monitor then decodes and
    acknowledges one envelope per batch. Nobody waits on these events; a task
    waits on none of them."""
    database_url: SecretStr | None = None
    """The task record's database: ``sqlite:///path`` or ``postgresql://…``;
    unset means a SQLite file in the user's data directory
    (:func:`boson_shared.record.location.default_database_url`)."""

    tenants_file: Path | None = None
    """TOML declaring the tenants that share the pool
    (:mod:`boson_shared.scheduling.tenants`); unset means one ``default``
    tenant owning everything."""
    preempt_grace_s: Annotated[float, Field(ge=0)] = DEFAULT_PREEMPT_GRACE_S
    """How long a tenant's claim on its quota waits before borrowed work is
    preempted for it."""

    log_level: str = "INFO"
    log_json: bool = False
    health_host: str = "127.0.0.1"
    health_port: Annotated[int, Field(ge=0, le=65_535)] | None = None
    instance_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = Field(
        default_factory=lambda: new_id()[:12]
    )

    def tenants(self) -> TenantsConfig:
        """The tenants of ``tenants_file`` (``ConfigError`` naming the bad key)."""
        return load_tenants(self.tenants_file)

    def names(self) -> Names:
        """The namespace's exchange and queue names, with this retry policy."""
        return Names(
            namespace=self.namespace,
            queue_type=self.queue_type,
            retry=RetryPolicy(delays_ms=self.retry_delays_ms, max_attempts=self.max_attempts),
        )


__all__ = ["BosonSettings", "Cipher", "Namespace"]
