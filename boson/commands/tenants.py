"""``boson tenants``: how the tenants share the pool, as the active balancer reports it.

Per tenant: its weight and whether it may preempt; its tasks running and
waiting; per resource, what it uses against its quota (and the guarantee
the live pool leaves of it, when smaller), what it borrows beyond that and
what its waiting tasks ask for. Amounts are in the units of task requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from boson.client import Client
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage
from boson_shared.errors import ConfigError, NoAnswerError
from boson_shared.settings import BosonSettings

RESOURCE_ORDER = ("cpu", "memory", "gpu")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tenants",
        help="show each tenant's usage against its quota, borrowing and waiting work",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--broker", help="amqp://… (default BOSON_BROKER_URL)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=float, default=10.0, help="wait for a report (s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = BosonSettings()
    if args.broker is not None:
        settings = settings.model_copy(update={"broker_url": SecretStr(args.broker)})
    if settings.broker_url is None:
        raise ConfigError("tenants needs a running cluster: set BOSON_BROKER_URL or --broker")
    report = asyncio.run(collect(settings, args.timeout))
    if args.json:
        print(json.dumps(report.model_dump(mode="json", exclude={"kind"}), indent=2))
    else:
        Console().print(render(report))
    return 0


async def collect(settings: BosonSettings, timeout: float) -> TenantsReport:
    client = await Client.connect(settings=settings)
    try:
        return await client.tenants(timeout)
    except TimeoutError:
        raise NoAnswerError(
            f"no tenants report within {timeout:g} s on namespace {settings.namespace!r}: "
            "is a balancer running (`boson run balancer`)?"
        ) from None
    finally:
        await client.delete_queues()  # a one-shot client: nothing will come for it
        await client.close()


def resources_of(report: TenantsReport) -> list[str]:
    """The resources worth a column: the pool's, and any a tenant names."""
    named = set(report.pool)
    for tenant in report.tenants:
        named |= set(tenant.quota) | set(tenant.usage) | set(tenant.pending)
    known = [r for r in RESOURCE_ORDER if r in named]
    return known + sorted(named - set(RESOURCE_ORDER))


def render(report: TenantsReport, now: float | None = None) -> Table:
    """The report as a table: one row per tenant."""
    now = time.time() if now is None else now
    resources = resources_of(report)
    pool = "  ".join(f"{r} {_amount(report.pool.get(r, 0.0))}" for r in resources)
    table = Table(
        title=f"Tenants (pool: {pool or 'empty'}; preemption grace {report.grace_s:g} s)",
        caption=f"reported by {report.balancer_id} {max(0.0, now - report.reported_at):.1f} s ago"
        " · used / quota (guarantee, when the pool shrank it)",
    )
    table.add_column("tenant")
    for column in ("weight", "preempts", "running", "waiting"):
        table.add_column(column, justify="right")
    for resource in resources:
        table.add_column(resource, justify="right")
    table.add_column("borrowed")
    table.add_column("pending")
    for tenant in report.tenants:
        table.add_row(
            tenant.name,
            f"{tenant.weight:g}",
            "yes" if tenant.may_preempt else "no",
            str(tenant.running),
            str(tenant.waiting),
            *(_used(tenant, r) for r in resources),
            _listed(tenant.borrowed, resources),
            _listed(tenant.pending, resources),
        )
    return table


def _used(tenant: TenantUsage, resource: str) -> str:
    used = _amount(tenant.usage.get(resource, 0.0))
    quota = tenant.quota.get(resource, 0.0)
    guarantee = tenant.guarantee.get(resource)
    if quota <= 0 and not guarantee:
        return used
    text = f"{used} / {_amount(quota)}"
    if guarantee is not None and guarantee < quota:
        text += f" ({_amount(guarantee)})"
    over = tenant.usage.get(resource, 0.0) > (guarantee if guarantee is not None else quota)
    return f"[yellow]{text}[/yellow]" if over else text


def _listed(amounts: Mapping[str, float], resources: list[str]) -> str:
    shown = [f"{r} {_amount(amounts[r])}" for r in resources if amounts.get(r, 0.0) > 0]
    return ", ".join(shown) or "-"


def _amount(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.4g}"


__all__ = ["collect", "register", "render", "resources_of", "run"]
