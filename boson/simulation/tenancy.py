"""Several tenants in the simulator: admission in front of placement.

:class:`TenantSimulation` is the engine of :mod:`boson.simulation.engine`
with :class:`~boson_shared.scheduling.admission.Admission` — the code the
balancer is to run — deciding which waiting work goes next: every arrival
joins its tenant's line, and each time capacity frees (or a claim's grace
ends) a pass offers it in the admission order, each offer placed through
the same placer as ever. Preempted instances stop at once, release their
nodes and go back to the front of their tenant's line; they restart from
scratch and their queueing delay is not counted twice (nor is a node
failure's). Probation is off, for every policy alike.

Three policies (:data:`POLICIES`), the same placer and backfill window:

* ``boson`` — quotas, borrowing without limit, preemption after the grace
  period, priorities with aging, DRF across tenants;
* ``fifo`` — no tenants: one line in submission order, priorities ignored;
* ``strict`` — quotas with no borrowing (nor preemption, which only takes
  back borrowed capacity).

The tenant rule for the Alibaba v2017 trace (:func:`alibaba_v2017_tenants`)
and the measurements of :mod:`boson.simulation.fairness` are here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from boson.simulation.engine import Simulation
from boson.simulation.fairness import TenantRecorder, TenantReport, report
from boson.simulation.instances import (
    BacklogDrainer,
    Pending,
    RunningGroup,
    place_instances_on_devices,
)
from boson.simulation.metrics import Metrics, summarise
from boson.simulation.table import BatchPlacer, IntArray
from boson.simulation.trace_types import Cluster, NodeEvents, Workload
from boson_shared.scheduling.admission import (
    DEFAULT_PREEMPT_GRACE_S,
    Admission,
    Running,
)
from boson_shared.scheduling.table import NodeTable
from boson_shared.scheduling.tenants import (
    DEFAULT_TENANT,
    TenantsConfig,
    TenantSpec,
    entitlements,
)

POLICIES = ("boson", "fifo", "strict")

MAX_RECLAIM_ROUNDS = 8
"""Rounds of reclaim and admission one pass may take (see ``admission_pass``)."""

ALIBABA_TENANTS: dict[int, str] = {0: "a", 1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "c", 7: "d"}
"""``job_id % 8`` → tenant, for the Alibaba v2017 trace."""
ALIBABA_WEIGHTS: dict[str, float] = {"a": 4.0, "b": 2.0, "c": 1.0, "d": 1.0}
ALIBABA_HIGH_PRIORITY = 100
"""The priority of the jobs with ``job_id % 20 == 0``; the others have 0."""


@dataclass(frozen=True)
class Tenancy:
    """Each task's tenant and priority."""

    tenant: tuple[str, ...]
    priority: IntArray


def alibaba_v2017_tenants(workload: Workload) -> Tenancy:
    """The rule: tenant by ``job_id % 8`` (0–3 a, 4–5 b, 6 c, 7 d), priority 100
    for ``job_id % 20 == 0``, else 0."""
    ids = np.asarray([int(name) for name in workload.job_names], np.int64)[workload.job]
    tenant = tuple(ALIBABA_TENANTS[k] for k in (ids % 8).tolist())
    priority = np.where(ids % 20 == 0, ALIBABA_HIGH_PRIORITY, 0).astype(np.int64)
    return Tenancy(tenant, priority)


def trace_tenants(workload: Workload) -> Tenancy:
    """The tenants and priorities a generic CSV gives (``default``, 0 where none)."""
    tenant = workload.tenant or (DEFAULT_TENANT,) * workload.tasks
    priority = (
        workload.priority if workload.priority is not None else np.zeros(workload.tasks, np.int64)
    )
    return Tenancy(tenant, priority)


def proportional_quotas(
    weights: dict[str, float], pool: tuple[float, ...], *, may_preempt: bool = True
) -> TenantsConfig:
    """Quotas of every resource the pool has, in the ratio of the weights."""
    total = sum(weights.values())
    governed = {r: c for r, c in zip(("cpu", "memory", "gpu"), pool, strict=True) if c > 0}
    return TenantsConfig(
        tenants={
            name: TenantSpec(
                quota={r: c * w / total for r, c in governed.items()},  # type: ignore[misc]
                weight=w,
                may_preempt=may_preempt,
            )
            for name, w in weights.items()
        }
    )


class _Pass:
    """The drainer: every trigger runs an admission pass."""

    def observe(self, demand: object, count: int) -> None:
        pass

    def drain(self, sim: Simulation) -> None:
        assert isinstance(sim, TenantSimulation)
        sim.admission_pass()

    def recover(self, sim: Simulation, task: int, count: int) -> None:
        pass  # TenantSimulation._lost puts the instances back in line

    def head(self, sim: Simulation) -> Pending | None:
        return None  # admission keeps its own line; this replay makes no head reservation


class TenantSimulation(Simulation):
    """One replay with admission across tenants (see the module docstring)."""

    def __init__(
        self,
        workload: Workload,
        cluster: Cluster,
        events: NodeEvents,
        placer_factory: Callable[[NodeTable], BatchPlacer],
        admission: Admission,
        tenancy: Tenancy,
        entitlement: dict[str, float],
        *,
        fifo: bool = False,
        sample_step: float = 10.0,
        node_victims: bool = True,
    ) -> None:
        drainer: BacklogDrainer = _Pass()
        super().__init__(workload, cluster, events, placer_factory, drainer, sample_step)
        self.admission = admission
        self.tenancy = tenancy
        self.fifo = fifo
        self.node_victims = node_victims
        """Whether reclaim chooses victims node by node (else on the pool's total)."""
        self._runs: dict[int, Running] = {}
        self._group_of: dict[int, int] = {}
        self._started = np.zeros(workload.tasks, np.int64)
        self._pool_seen: tuple[float, ...] = ()
        self._need = workload.demand[:, self._bottleneck].tolist()
        self.tenants = TenantRecorder.create(tuple(entitlement), entitlement)
        self._sync_pool()

    # -- the pool ---------------------------------------------------------------

    def _sync_pool(self) -> None:
        alive = self.table.alive
        pool = tuple(self.table.capacity[alive].sum(axis=0).tolist())
        if pool != self._pool_seen:
            self._pool_seen = pool
            self.admission.set_pool(pool)

    # -- arrivals, passes, preemption ---------------------------------------------

    def _arrive(self, task: int) -> None:
        count = int(self.workload.instances[task])
        if self._never[task]:
            self.recorder.never += count
            return
        owner = self.tenancy.tenant[task]
        self.tenants.submitted(owner, self.now, self._need[task] * count)
        self.admission.submit(
            task,
            DEFAULT_TENANT if self.fifo else owner,
            self.demands[task],
            self.now,
            count=count,
            priority=0 if self.fifo else int(self.tenancy.priority[task]),
            order=float(self.workload.submit[task]),
        )
        self.admission_pass()

    def admission_pass(self) -> None:
        """Offer what is free in admission order; then reclaim for claims past grace."""
        self._sync_pool()
        self.admission.admit(self.now, self._place)
        # The balancer runs a pass on every result, so a claim left short by
        # one round of preemption is looked at again at once; here nothing
        # else may happen for a long time, so go round until none is found.
        for _ in range(MAX_RECLAIM_ROUNDS):
            victims = self.admission.reclaim(self.now, self if self.node_victims else None)
            if not victims:
                break
            for victim in victims:
                self._stop(victim.run, victim.count, victim.nodes)
                self.tenants.preempted += victim.count
            self.admission.admit(self.now, self._place)
        self.tenants.check_reach(self.now, self._pool_seen[self._bottleneck])

    def _place(self, offer: Running) -> int:
        task = offer.key
        assert isinstance(task, int)
        nodes, masks = place_instances_on_devices(
            self.placer, self.table, self.workload.demand[task], offer.count
        )
        if nodes.size:
            self._start_run(task, nodes, offer, masks)
        return int(nodes.size)

    def _start_run(
        self, task: int, nodes: IntArray, run: Running, masks: IntArray | None = None
    ) -> None:
        placed = int(nodes.size)
        first = min(placed, int(self.workload.instances[task] - self._started[task]))
        self._started[task] += first
        self.start(task, nodes, replaced=True, masks=masks)  # delays are recorded below, once
        key = self._seq
        self._runs[key] = run
        self._group_of[id(run)] = key
        self.tenants.started(self.tenancy.tenant[task], self._need[task] * placed)
        if first > 0:
            delay = self.now - float(self.workload.submit[task])
            self.recorder.delays.append(delay)
            self.recorder.delay_weights.append(first)
            self.tenants.delay(int(self.tenancy.priority[task]), delay, first)

    # -- what reclaim sees of the nodes (admission's NodeRoom) -------------------------

    def free(self, node: Hashable) -> Sequence[float]:
        assert isinstance(node, int)
        if not self.table.alive[node]:
            return (0.0, 0.0, 0.0)
        return (self.table.capacity[node] - self.table.allocated[node]).tolist()  # type: ignore[no-any-return]

    def nodes(self, run: Running) -> Sequence[Hashable]:
        key = self._group_of.get(id(run))
        group = self._groups.get(key) if key is not None else None
        return [] if group is None else group.nodes.tolist()

    def _stop(self, run: Running, count: int, nodes: Sequence[Hashable] = ()) -> None:
        """Stop ``count`` instances of ``run``, one on each of ``nodes`` if named
        (admission already put them back in line)."""
        key = self._group_of.get(id(run))
        group = self._groups.get(key) if key is not None else None
        if key is None or group is None:
            return
        keep = np.ones(group.nodes.size, np.bool_)
        if nodes:
            where = group.nodes.tolist()
            for node in nodes:
                # The last instance on that node still kept.
                keep[max(k for k, n in enumerate(where) if n == node and keep[k])] = False
        else:
            keep[group.nodes.size - count :] = False
        masks = group.masks
        self._release(group.task, group.nodes[~keep], None if masks is None else masks[~keep])
        group.nodes = group.nodes[keep]
        if masks is not None:
            group.masks = masks[keep]
        owner = self.tenancy.tenant[group.task]
        self.tenants.stopped(owner, self._need[group.task] * count, self.now, back_in_line=True)
        if group.nodes.size == 0:
            del self._groups[key]  # its heap entry is skipped when it pops
            self._forget(key)

    def _forget(self, key: int) -> None:
        run = self._runs.pop(key, None)
        if run is not None:
            self._group_of.pop(id(run), None)

    # -- the engine's hooks -----------------------------------------------------------

    def _finished(self, key: int, group: RunningGroup) -> None:
        super()._finished(key, group)
        run = self._runs.get(key)
        if run is not None:
            self.admission.release(run, int(group.nodes.size))
        owner = self.tenancy.tenant[group.task]
        self.tenants.stopped(
            owner, self._need[group.task] * int(group.nodes.size), self.now, back_in_line=False
        )
        self._forget(key)

    def _lost(self, key: int, group: RunningGroup, lost: int) -> None:
        run = self._runs.get(key)
        if run is not None:
            self.admission.requeue(run, lost)
        owner = self.tenancy.tenant[group.task]
        self.tenants.stopped(owner, self._need[group.task] * lost, self.now, back_in_line=True)
        if group.nodes.size == 0:
            self._forget(key)

    def _waiting(self) -> bool:
        return self.admission.has_waiting()

    def _waiting_count(self) -> int:
        return sum(self.admission.waiting(name) for name in self.admission.names)

    def _wakeup(self) -> float | None:
        return self.admission.next_reclaim()

    def _sample(self, when: float) -> None:
        super()._sample(when)
        self.tenants.sample(when, self._pool_seen[self._bottleneck])


def run_policy(
    policy: str,
    workload: Workload,
    cluster: Cluster,
    events: NodeEvents,
    tenancy: Tenancy,
    config: TenantsConfig,
    placer_factory: Callable[[NodeTable], BatchPlacer],
    *,
    grace_s: float = DEFAULT_PREEMPT_GRACE_S,
    sample_step: float = 10.0,
    node_victims: bool = True,
) -> tuple[TenantReport, Metrics]:
    """Replay the trace under one of :data:`POLICIES`; its tenant report and metrics.

    ``node_victims`` False has reclaim choose victims on the pool's total
    instead of node by node (for comparison)."""
    if policy not in POLICIES:
        raise KeyError(policy)
    fifo = policy == "fifo"
    admission = Admission(
        TenantsConfig.single() if fifo else config,
        grace_s=grace_s,
        borrowing=policy != "strict",
    )
    sim = TenantSimulation(
        workload,
        cluster,
        events,
        placer_factory,
        admission,
        tenancy,
        dict(entitlements(config)),
        fifo=fifo,
        sample_step=sample_step,
        node_victims=node_victims,
    )
    started = time.perf_counter()
    recorder = sim.run()
    wall = time.perf_counter() - started
    metrics = summarise(policy, recorder, workload, cluster.capacity, wall)
    utilisation = float(metrics.utilisation[sim.bottleneck])
    return report(policy, sim.tenants, utilisation), metrics


__all__ = [
    "ALIBABA_HIGH_PRIORITY",
    "ALIBABA_TENANTS",
    "ALIBABA_WEIGHTS",
    "POLICIES",
    "Tenancy",
    "TenantSimulation",
    "alibaba_v2017_tenants",
    "proportional_quotas",
    "run_policy",
    "trace_tenants",
]
