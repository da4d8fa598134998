"""The roster of named policies the simulator compares: a placer and a backlog drainer each.

Boson's strategies (:data:`BOSON_STRATEGIES`) run without rebalancing, or with
it under the name ``<strategy>+rebalance`` (the drainers of
:mod:`~boson.simulation.drainers`: :class:`~boson.simulation.drainers.HeadOfLine`
and :class:`~boson.simulation.drainers.Balancer`).

Baselines (random, round-robin, first-fit, k8s-default) run with
:class:`~boson.simulation.drainers.HeadOfLine`, the behaviour of a plain
scheduler queue; any baseline name with ``+rebalance`` runs it behind the
balancer instead, to separate what the scorer does from what the backlog policy
does (kube-scheduler itself retries every unschedulable pod on cluster changes,
which is closer to the balancer's window than to a strict head of line).

Boson's policies, with rebalancing or without, also put a node that failed
on probation when it returns (:mod:`~boson_shared.scheduling.probation`, what
Boson's monitor does); the baselines trust it at once, as their schedulers do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from boson.simulation.baselines import BASELINES
from boson.simulation.drainers import Balancer, HeadOfLine
from boson.simulation.engine import DEFAULT_SAMPLE_STEP, simulate
from boson.simulation.instances import BacklogDrainer
from boson.simulation.metrics import Metrics, Recorder
from boson.simulation.table import BatchPlacer
from boson.simulation.trace_types import Cluster, NodeEvents, Workload
from boson_shared.scheduling.placement import Placer
from boson_shared.scheduling.probation import PROBATION_S, Probation
from boson_shared.scheduling.table import NodeTable

BOSON_STRATEGIES = ("binpack", "spread", "balanced", "tetris", "remnant", "binpack-fgd")
REBALANCE_SUFFIX = "+rebalance"


@dataclass(frozen=True)
class Policy:
    """A named placer factory with its backlog drainer."""

    name: str
    placer: Callable[[NodeTable], BatchPlacer]
    drainer: Callable[[], BacklogDrainer]
    baseline: bool

    @property
    def reserve(self) -> bool:
        """Whether the head of the waiting order gets a reservation: Boson's
        policies do (``boson_shared/scheduling/head_reservation.py``); the
        baselines do not, as their schedulers do not."""
        return not self.baseline

    def probation(self, base_s: float = PROBATION_S) -> Probation | None:
        """Boson's probation for nodes that failed (its monitor's); a baseline has none.

        ``base_s`` 0: none either (``boson simulate --probation-s 0``).
        """
        if self.baseline or base_s <= 0:
            return None
        return Probation.lasting(base_s)


def _boson(strategy: str) -> Callable[[NodeTable], BatchPlacer]:
    def factory(table: NodeTable) -> BatchPlacer:
        return Placer(table, strategy)  # type: ignore[arg-type]

    return factory


def policy_names() -> list[str]:
    """Every policy a full run compares, Boson's first."""
    boson = [s + suffix for s in BOSON_STRATEGIES for suffix in ("", REBALANCE_SUFFIX)]
    # k8s-default behind the balancer too: it separates the scorer's effect
    # from the backlog policy's (see the module docstring).
    return [*boson, *BASELINES, "k8s-default" + REBALANCE_SUFFIX]


def make_policy(name: str) -> Policy:
    """The policy called ``name`` (see :func:`policy_names`); ``KeyError`` if none."""
    strategy, _, rest = name.partition("+")
    if rest not in ("", REBALANCE_SUFFIX[1:]):
        raise KeyError(name)
    drainer: Callable[[], BacklogDrainer] = Balancer if rest else HeadOfLine
    if strategy in BASELINES:
        return Policy(name, BASELINES[strategy], drainer, baseline=True)
    if strategy not in BOSON_STRATEGIES:
        raise KeyError(name)
    return Policy(name, _boson(strategy), drainer, baseline=False)


def compare(
    names: Sequence[str],
    workload: Workload,
    cluster: Cluster,
    events: NodeEvents,
    sample_step: float = DEFAULT_SAMPLE_STEP,
    probation_s: float = PROBATION_S,
    reservation: bool = True,
) -> list[tuple[Metrics, Recorder]]:
    """Replay the same trace under each named policy, in order (see :meth:`Policy.probation`).

    ``reservation=False``: no head reservation for Boson's policies either
    (to measure what it changes).
    """
    results = []
    for name in names:
        policy = make_policy(name)
        results.append(
            simulate(
                name,
                workload,
                cluster,
                events,
                policy.placer,
                policy.drainer(),
                sample_step,
                policy.probation(probation_s),
                policy.reserve and reservation,
                policy.reserve,
            )
        )
    return results


__all__ = [
    "BOSON_STRATEGIES",
    "REBALANCE_SUFFIX",
    "Policy",
    "compare",
    "make_policy",
    "policy_names",
]
