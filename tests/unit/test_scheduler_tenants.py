"""The scheduler refuses a task of a tenant the tenants file does not declare."""

from __future__ import annotations

from pathlib import Path

import pytest

from boson_services.scheduler.app import SchedulerService
from boson_services.scheduler.handlers import UNKNOWN_TENANT, SchedulerHandlers
from boson_services.scheduler.settings import SchedulerSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskEvent, TaskPlaced, TaskResult, TaskSubmitted
from boson_shared.contract.topology import Names
from boson_shared.errors import ConfigError
from boson_shared.scheduling.demand import LinearDemandModel
from tests.support.fakes import Clock
from tests.support.results import failure_sent

NOW = 1_700_000_000.0
NAMES = Names("sched-tenants")


def scheduler(tenants: tuple[str, ...] | None) -> SchedulerHandlers:
    return SchedulerHandlers(
        names=NAMES,
        strategy="binpack",
        demand_model=LinearDemandModel(),
        reservation_ttl_s=10.0,
        ingress_max_age_s=60.0,
        record=True,
        tenants=tenants,
        clock=Clock(),
        wall_clock=lambda: NOW,
    )


def task(number: int, tenant: str) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=f"t{number}",
        handler="noop",
        reply_to="client-1",
        submitted_at=NOW - 1,
        tenant=tenant,
        priority=number,
    )


async def test_an_unknown_tenant_fails_naming_the_known_ones_and_the_rest_go_on() -> None:
    handlers = scheduler(("research", "batch", "default"))
    emits = await handlers.on_submitted_batch([task(1, "nobody"), task(2, "research")])
    (refused,) = [e for e in emits if isinstance(e.message, TaskResult)]
    error = failure_sent(refused, NAMES, "client-1", attempts=0)
    assert error.error_type == UNKNOWN_TENANT == "unknown-tenant"
    assert error.message == (
        "tenant 'nobody' is not in the tenants file; the known tenants: batch, default, research"
    )
    placed = [e.message.task.task_id for e in emits if isinstance(e.message, TaskPlaced)]
    assert placed == ["t2"]
    # The record learns the refused task with its tenant and priority.
    events = {e.message.task_id: e.message for e in emits if isinstance(e.message, TaskEvent)}
    assert (events["t1"].stage, events["t1"].tenant, events["t1"].priority) == (
        "submitted",
        "nobody",
        1,
    )
    assert (events["t2"].stage, events["t2"].tenant) == ("pending", "research")


async def test_a_long_list_of_tenants_is_cut_short_in_the_message() -> None:
    known = tuple(f"team-{k:03d}" for k in range(120))
    (refused,) = [
        e.message
        for e in await scheduler(known).on_submitted(task(1, "nobody"))
        if isinstance(e.message, TaskResult)
    ]
    assert refused.error is not None
    assert refused.error.message.endswith("team-049 (and 70 more)")


def service(**settings: object) -> SchedulerService:
    return SchedulerService(
        SchedulerSettings(namespace="sched-tenants", **settings),  # type: ignore[arg-type]
        MemoryTransport(MemoryBroker()),
        EnvelopeCodec(Keyring.ephemeral()),
    )


def test_the_service_takes_its_tenants_from_the_tenants_file(tmp_path: Path) -> None:
    assert service().handlers.tenants == frozenset({"default"})  # no file: the default tenant alone
    path = tmp_path / "tenants.toml"
    path.write_text("[tenants.a]\nquota = { cpu = 4 }\n[tenants.b]\n")
    assert service(tenants_file=path).handlers.tenants == frozenset({"a", "b"})
    path.write_text("[tenants.a]\nquota = { cpu = -4 }\n")
    with pytest.raises(ConfigError, match=r"tenants\.a\.quota\.cpu"):
        service(tenants_file=path)
