"""What a run with several tenants is judged on (``benchmarks/fairness.py`` prints it).

Definitions, all on the bottleneck resource (the one with the highest
offered load) and sampled on the engine's grid:

* **share** — a tenant's allocation ÷ the alive pool's capacity;
  **entitlement** — its weight ÷ all weights. "While every tenant is
  backlogged" keeps the samples at which every tenant has had work waiting
  for at least ``settle_s`` without a break (:data:`SETTLE_S` by default:
  the time a tenant is given to reach its quota), so a burst that has just
  arrived, which no policy could have served yet, does not count.
* **relative error** — mean share over those samples ÷ entitlement − 1.
* **short while backlogged** — per tenant, of the samples at which *it*
  has had work waiting for ``settle_s`` (whoever else has), the fraction at
  which it held less than :data:`SHORT_FRACTION` of the lesser of its
  entitlement and its whole demand (running plus waiting): the same
  promise, judged on every sample it applies to (when a policy serves
  small tenants at once, all four are rarely backlogged together). A burst
  that arrives while older work has kept a tenant waiting counts from its
  first sample, grace period included.
* **Jain's index** over weighted shares — per sample, (Σx)² ÷ (n·Σx²) with
  x = share ÷ entitlement; the mean over those samples.
* **time to reach quota** — an episode starts when a tenant with nothing
  running or waiting submits; it ends when the tenant holds at least
  :data:`REACH_FRACTION` of the lesser of its entitlement of the pool and its
  whole demand (running plus waiting). Checked after every admission pass.
  The worst episode per tenant.
* **time below quota while asking** — the same, for every episode: one
  starts whenever a tenant holds less than :data:`REACH_FRACTION` of the
  lesser of its entitlement and its whole demand while it has work waiting,
  and ends when it no longer does. Over all tenants, the p99 and the worst
  (the reclaim speed, all run long, not only at a tenant's start). The
  "reaches its quota within 60 s of starting" of the tenants' issue is
  read both ways: literally (time to reach quota, which a trace whose
  tenants all start on an empty pool meets at once) and as this one, the
  stricter, whose worst episode is held to 60 s. The grace period before
  preemption is part of every episode; none is left out.
* **queueing delay per priority class** — per instance, its first start
  minus its task's submission, weighted by instances; p99.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.table import Table

from boson.simulation.metrics import weighted_quantile

SETTLE_S = 60.0
"""How long a tenant must have had work waiting to count as backlogged."""

SHORT_FRACTION = 0.9
"""A backlogged tenant holding less than this part of its entitlement (or of its
whole demand, if smaller) is short of it (the ±10 % band of the tenants' issue)."""

REACH_FRACTION = 0.95
"""How close to its target a tenant must come to count as having reached it
(instances are whole, so exactly the target is rarely possible)."""


@dataclass
class TenantRecorder:
    """Per-tenant state the tenant engine records as it runs."""

    names: tuple[str, ...]
    entitlement: dict[str, float]
    usage: dict[str, float] = field(default_factory=dict)
    """Current allocation of the bottleneck resource, by tenant."""
    pending: dict[str, float] = field(default_factory=dict)
    """Current waiting demand of the bottleneck resource, by tenant."""
    shares: list[list[float]] = field(default_factory=list)
    demands: list[list[float]] = field(default_factory=list)
    """Per sample, per tenant: running plus waiting, as a share of the pool."""
    all_backlogged: list[bool] = field(default_factory=list)
    backlogged: list[list[bool]] = field(default_factory=list)
    """Per sample, per tenant: has it had work waiting for ``settle_s``."""
    delays: dict[int, tuple[list[float], list[int]]] = field(default_factory=dict)
    reach: dict[str, list[float]] = field(default_factory=dict)
    unreached: dict[str, int] = field(default_factory=dict)
    preempted: int = 0
    settle_s: float = SETTLE_S
    _episode: dict[str, float] = field(default_factory=dict)
    below: list[float] = field(default_factory=list)
    """Lengths of the episodes below quota while asking, all tenants."""
    _below: dict[str, float] = field(default_factory=dict)
    _waiting_since: dict[str, float] = field(default_factory=dict)
    _pool: float = 0.0

    @staticmethod
    def create(names: tuple[str, ...], entitlement: dict[str, float]) -> TenantRecorder:
        return TenantRecorder(
            names,
            entitlement,
            usage=dict.fromkeys(names, 0.0),
            pending=dict.fromkeys(names, 0.0),
            reach={n: [] for n in names},
            unreached=dict.fromkeys(names, 0),
        )

    def submitted(self, tenant: str, now: float, amount: float) -> None:
        if self.usage[tenant] <= 0 and self.pending[tenant] <= 0 and tenant not in self._episode:
            self._episode[tenant] = now
        self._wait(tenant, now, amount)

    def started(self, tenant: str, amount: float) -> None:
        self.pending[tenant] -= amount
        self.usage[tenant] += amount
        if self.pending[tenant] <= 1e-12:
            self._waiting_since.pop(tenant, None)

    def stopped(self, tenant: str, amount: float, now: float, *, back_in_line: bool) -> None:
        self.usage[tenant] -= amount
        if back_in_line:
            self._wait(tenant, now, amount)

    def _wait(self, tenant: str, now: float, amount: float) -> None:
        self.pending[tenant] += amount
        self._waiting_since.setdefault(tenant, now)

    def delay(self, priority: int, value: float, weight: int) -> None:
        values, weights = self.delays.setdefault(priority, ([], []))
        values.append(value)
        weights.append(weight)

    def check_reach(self, now: float, pool: float) -> None:
        """Close the episodes of tenants that reached their target by ``now``."""
        self._pool = pool
        for tenant in self.names:
            use = self.usage[tenant]
            target = min(self.entitlement[tenant] * pool, use + self.pending[tenant])
            reached = use >= REACH_FRACTION * target - 1e-12
            since = self._episode.get(tenant)
            if since is not None and reached:
                self.reach[tenant].append(now - since)
                del self._episode[tenant]
            start = self._below.get(tenant)
            if start is None and not reached:
                self._below[tenant] = now
            elif start is not None and reached:
                self.below.append(now - start)
                del self._below[tenant]

    def sample(self, when: float, pool: float) -> None:
        share = [self.usage[n] / pool if pool > 0 else 0.0 for n in self.names]
        self.shares.append(share)
        self.demands.append(
            [(self.usage[n] + self.pending[n]) / pool if pool > 0 else 0.0 for n in self.names]
        )
        since = self._waiting_since
        flags = [n in since and when - since[n] >= self.settle_s for n in self.names]
        self.backlogged.append(flags)
        self.all_backlogged.append(all(flags))

    def finish(self) -> None:
        for tenant in self._episode:
            self.unreached[tenant] += 1
        self._episode.clear()
        self._below.clear()


@dataclass(frozen=True)
class TenantReport:
    """One policy's figures (see the module docstring)."""

    policy: str
    tenants: tuple[str, ...]
    entitlement: tuple[float, ...]
    share: tuple[float, ...]
    relative_error: tuple[float, ...]
    jain: float
    backlogged_fraction: float
    backlogged_samples: int
    short_while_backlogged: tuple[float, ...]
    """Per tenant, the part of its backlogged samples short of its entitlement."""
    own_backlogged_samples: tuple[int, ...]
    reach_worst: tuple[float, ...]
    reach_unreached: tuple[int, ...]
    below_p99: float
    below_worst: float
    p99_delay: dict[int, float]
    utilisation: float
    preempted: int

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "tenants": list(self.tenants),
            "entitlement": list(self.entitlement),
            "share": list(self.share),
            "relative_error": list(self.relative_error),
            "jain": self.jain,
            "backlogged_fraction": self.backlogged_fraction,
            "backlogged_samples": self.backlogged_samples,
            "short_while_backlogged": list(self.short_while_backlogged),
            "own_backlogged_samples": list(self.own_backlogged_samples),
            "reach_worst_s": list(self.reach_worst),
            "reach_unreached": list(self.reach_unreached),
            "below_quota_p99_s": self.below_p99,
            "below_quota_worst_s": self.below_worst,
            "p99_delay_s": {str(k): v for k, v in self.p99_delay.items()},
            "utilisation": self.utilisation,
            "preempted": self.preempted,
        }


def jain(x: np.ndarray) -> float:
    """Jain's fairness index of the values ``x`` (1: all equal)."""
    total = float(x.sum())
    squares = float((x * x).sum())
    return total * total / (x.size * squares) if squares > 0 else 1.0


def report(policy: str, rec: TenantRecorder, utilisation: float) -> TenantReport:
    """Summarise one run."""
    rec.finish()
    names = rec.names
    ent = np.asarray([rec.entitlement[n] for n in names])
    shares = np.asarray(rec.shares, np.float64).reshape(-1, len(names))
    mask = np.asarray(rec.all_backlogged, np.bool_)
    if mask.any():
        during = shares[mask]
        mean = during.mean(axis=0)
        index = float(np.mean([jain(row / ent) for row in during]))
    else:
        mean = np.full(len(names), np.nan)
        index = float("nan")
    own = np.asarray(rec.backlogged, np.bool_).reshape(-1, len(names))
    demand = np.asarray(rec.demands, np.float64).reshape(-1, len(names))
    short = shares < SHORT_FRACTION * np.minimum(ent, demand) - 1e-12
    own_samples = own.sum(axis=0)
    short_fraction = np.where(
        own_samples > 0, (short & own).sum(axis=0) / np.maximum(own_samples, 1), np.nan
    )
    p99 = {
        prio: weighted_quantile(np.asarray(v), np.asarray(w, np.float64), 0.99)
        for prio, (v, w) in sorted(rec.delays.items())
    }
    return TenantReport(
        policy=policy,
        tenants=names,
        entitlement=tuple(ent.tolist()),
        share=tuple(mean.tolist()),
        relative_error=tuple((mean / ent - 1.0).tolist()),
        jain=index,
        backlogged_fraction=float(mask.mean()) if mask.size else 0.0,
        backlogged_samples=int(mask.sum()),
        short_while_backlogged=tuple(short_fraction.tolist()),
        own_backlogged_samples=tuple(int(x) for x in own_samples.tolist()),
        reach_worst=tuple(max(rec.reach[n], default=float("nan")) for n in names),
        reach_unreached=tuple(rec.unreached[n] for n in names),
        below_p99=float(np.percentile(rec.below, 99)) if rec.below else 0.0,
        below_worst=max(rec.below, default=0.0),
        p99_delay=p99,
        utilisation=utilisation,
        preempted=rec.preempted,
    )


def render(reports: list[TenantReport]) -> Table:
    """The comparison table: one row per policy."""
    table = Table(title="tenants: shares of the bottleneck resource while all are backlogged")
    first = reports[0]
    classes = sorted({k for r in reports for k in r.p99_delay})
    table.add_column("policy")
    table.add_column("util", justify="right")
    for prio in classes:
        table.add_column(f"p99 wait prio {prio} s", justify="right")
    table.add_column("all backlogged (samples)", justify="right")
    table.add_column("Jain", justify="right")
    for name, ent in zip(first.tenants, first.entitlement, strict=True):
        table.add_column(f"{name} share/ent {ent:.3f}", justify="right")
    table.add_column("short while backlogged (samples)", justify="right")
    table.add_column("worst reach s", justify="right")
    table.add_column("below quota p99 / worst s", justify="right")
    table.add_column("preempted", justify="right")
    for r in reports:
        shares = [
            f"{s:.3f} ({e:+.0%})" if s == s else "-"
            for s, e in zip(r.share, r.relative_error, strict=True)
        ]
        reach = [x for x in r.reach_worst if x == x]
        short = " / ".join(
            f"{x:.0%} ({n})" if x == x else "-"
            for x, n in zip(r.short_while_backlogged, r.own_backlogged_samples, strict=True)
        )
        table.add_row(
            r.policy,
            f"{r.utilisation:.3f}",
            *[f"{r.p99_delay.get(prio, float('nan')):.0f}" for prio in classes],
            f"{r.backlogged_fraction:.1%} ({r.backlogged_samples})",
            f"{r.jain:.3f}" if r.jain == r.jain else "-",
            *shares,
            short,
            f"{max(reach):.0f}" if reach else "-",
            f"{r.below_p99:.0f} / {r.below_worst:.0f}",
            str(r.preempted),
        )
    return table


__all__ = [
    "REACH_FRACTION",
    "SHORT_FRACTION",
    "TenantRecorder",
    "TenantReport",
    "jain",
    "render",
    "report",
]
