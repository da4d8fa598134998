"""``boson tenants``: how the tenants share the pool, as the active balancer reports it.

Per tenant: its weight and whether it may preempt; its tasks running and
waiting; and a row per resource: what it uses, its quota (and the
guarantee the live pool leaves of it, when smaller), what it borrows beyond
that and what its waiting tasks ask for. Amounts are in the units of task
requests.

With ``--history``: the samples the task record kept of each tenant (one per
tenant per ``BOSON_TENANTS_SAMPLE_INTERVAL_S``), newest first — over the
bus with a broker configured, else straight from the record's database
(``--database``, ``BOSON_DATABASE_URL``, else the local SQLite file).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.console import Console
from rich.table import Table

from boson.client import Client
from boson.commands.broker import add_cluster_arguments, cluster_settings
from boson.commands.tasks import parse_since, read_record
from boson_shared.contract.tenants_report import TenantSample, TenantsReport, TenantUsage
from boson_shared.errors import InvalidQueryError, NoAnswerError
from boson_shared.record.tenant_samples import SampleQuery, read_samples
from boson_shared.runtime.bounded_run import run_bounded
from boson_shared.settings import BosonSettings

RESOURCE_ORDER = ("cpu", "memory", "gpu")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tenants",
        help="show each tenant's usage against its quota, borrowing and waiting work",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_cluster_arguments(
        parser,
        timeout_s=10.0,
        json_help="print the report as JSON",
        timeout_help="wait for a report (s)",
    )
    history = parser.add_argument_group("history (from the task record)")
    history.add_argument(
        "--history", action="store_true", help="the samples the record kept, newest first"
    )
    history.add_argument("--since", help="1h, 30m, 2d, an ISO time or epoch seconds")
    history.add_argument("--until", help="as --since: samples made before it")
    history.add_argument("--tenant", help="that tenant's samples only")
    history.add_argument("--limit", type=int, default=100, help="samples at most (1..1000)")
    history.add_argument(
        "--database", help="read this database directly (default BOSON_DATABASE_URL)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.history:
        return run_history(args)
    options = ("since", "until", "tenant", "database")
    given = [f"--{name}" for name in options if getattr(args, name)]
    if given:
        raise InvalidQueryError(f"{', '.join(given)} only with --history")
    settings = cluster_settings(args.broker, "tenants")
    report = run_bounded(collect(settings, args.timeout))
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
            "is a balancer running (`boson run balancer`)? The active one reports once it "
            "has received work"
        ) from None
    finally:
        await client.delete_queues()  # a one-shot client: nothing will come for it
        await client.close()


def run_history(args: argparse.Namespace) -> int:
    query = SampleQuery(
        tenant=args.tenant,
        since=parse_since(args.since) if args.since is not None else None,
        until=parse_since(args.until) if args.until is not None else None,
        limit=args.limit,
    )
    samples = read_record(
        args,
        lambda client: client.tenant_history(
            tenant=query.tenant,
            since=query.since,
            until=query.until,
            limit=query.limit,
            timeout=args.timeout,
        ),
        lambda store: read_samples(store, query),
    )
    if args.json:
        rows = [sample.model_dump(mode="json") for sample in samples]
        print(json.dumps({"samples": rows}, indent=2))
    else:
        Console().print(render_history(samples))
    return 0


def render_history(samples: Sequence[TenantSample]) -> Table:
    """A row per sample: when, the tenant, its tasks, and per resource used/quota."""
    named: set[str] = set()
    for sample in samples:
        named |= set(sample.quota) | set(sample.usage) | set(sample.pending)
    resources = [r for r in RESOURCE_ORDER if r in named] + sorted(named - set(RESOURCE_ORDER))
    table = Table(
        title=f"Tenants over time ({len(samples)} samples, newest first)",
        caption="per resource: used/quota (+borrowed) [pending]",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("at", no_wrap=True)
    table.add_column("tenant", no_wrap=True)
    for column in ("run", "wait", "preempted", "share"):
        table.add_column(column, justify="right", no_wrap=True)
    for resource in resources:
        table.add_column(resource, justify="right", no_wrap=True)
    for sample in samples:
        table.add_row(
            datetime.fromtimestamp(sample.at).isoformat(sep=" ", timespec="seconds"),
            sample.name,
            str(sample.running),
            str(sample.waiting),
            str(sample.preempted),
            f"{sample.dominant_share:.2f}",
            *(_history_cell(sample, r) for r in resources),
        )
    return table


def _history_cell(sample: TenantSample, resource: str) -> str:
    text = f"{_amount(sample.usage.get(resource, 0.0))}/{_amount(sample.quota.get(resource, 0.0))}"
    borrowed = sample.borrowed.get(resource, 0.0)
    if borrowed > 0:
        text += f" +{_amount(borrowed)}"
    pending = sample.pending.get(resource, 0.0)
    if pending > 0:
        text += f" [{_amount(pending)}]"
    return text


def resources_of(report: TenantsReport) -> list[str]:
    """The resources worth a column: the pool's, and any a tenant names."""
    named = set(report.pool)
    for tenant in report.tenants:
        named |= set(tenant.quota) | set(tenant.usage) | set(tenant.pending)
    known = [r for r in RESOURCE_ORDER if r in named]
    return known + sorted(named - set(RESOURCE_ORDER))


def render(report: TenantsReport, now: float | None = None) -> Table:
    """The report as a table: a row per tenant and resource it quotas, uses or waits for."""
    now = time.time() if now is None else now
    resources = resources_of(report)
    pool = "  ".join(f"{r} {_amount(report.pool.get(r, 0.0))}" for r in resources)
    table = Table(
        title=f"Tenants (pool: {pool or 'empty'}; preemption grace {report.grace_s:g} s)",
        caption=f"reported by {report.balancer_id} {max(0.0, now - report.reported_at):.1f} s ago;"
        " quota (guarantee, when the live pool shrank it)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("tenant", no_wrap=True)
    for column in ("weight", "preempt", "run", "wait"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("resource", no_wrap=True)
    for column in ("used", "quota", "borrowed", "pending"):
        table.add_column(column, justify="right", no_wrap=True)
    for tenant in report.tenants:
        first = [
            tenant.name,
            f"{tenant.weight:g}",
            "yes" if tenant.may_preempt else "no",
            str(tenant.running),
            str(tenant.waiting),
        ]
        cells = [_resource_cells(tenant, r) for r in resources if _concerns(tenant, r)]
        for k, resource_cells in enumerate(cells or [["-"] * 5]):
            table.add_row(
                *(first if k == 0 else [""] * len(first)),
                *resource_cells,
                end_section=k == max(len(cells), 1) - 1,
            )
    return table


def _concerns(tenant: TenantUsage, resource: str) -> bool:
    """Whether the tenant has a quota of ``resource``, uses, borrows or waits for it."""
    return any(
        amounts.get(resource, 0.0) > 0
        for amounts in (tenant.quota, tenant.usage, tenant.borrowed, tenant.pending)
    )


def _resource_cells(tenant: TenantUsage, resource: str) -> list[str]:
    used = tenant.usage.get(resource, 0.0)
    quota = tenant.quota.get(resource, 0.0)
    guarantee = tenant.guarantee.get(resource)
    quota_text = _amount(quota)
    if guarantee is not None and guarantee < quota:
        quota_text += f" ({_amount(guarantee)})"
    borrowed = tenant.borrowed.get(resource, 0.0)
    used_text = _amount(used)
    if borrowed > 0:
        used_text = f"[yellow]{used_text}[/yellow]"
    return [
        resource,
        used_text,
        quota_text,
        _amount(borrowed) if borrowed > 0 else "-",
        _amount(tenant.pending.get(resource, 0.0)) if tenant.pending.get(resource) else "-",
    ]


def _amount(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.4g}"


__all__ = ["collect", "register", "render", "render_history", "resources_of", "run", "run_history"]
