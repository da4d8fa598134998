"""Probation: a node that failed takes no new work for a while after it returns.

A node that dropped out is likely to drop out again — on the Alibaba v2017
trace two machines fail every two hours or so, all day. Each failure kills
what the node runs, and that work starts over elsewhere from scratch, so
long work placed on a flaky node is paid for twice. So when a node that
failed heartbeats again it is *on probation*: alive (its work is not
recovered, it is counted in the cluster) but offered no new work until the
probation ends — :data:`PROBATION_S` after it returned, doubled for each
earlier failure within :data:`FORGET_S` (capped at :data:`MAX_PROBATION_S`),
the backoff of a flapping node. An hour is the default of Spark's
``excludeOnFailure.timeout``, the same idea for executors.

So that a small cluster never idles for an hour because one node restarted,
at most :data:`MAX_SHARE` of the nodes is on probation at once: a node that
returns when that many already are is trusted at once (with a 3-node cluster,
never on probation).

The monitor applies it and publishes the result in each ``NodeState``
(``on_probation``); the scheduler and the balancer then place and dispatch
nothing new there. The simulator applies the very same rules to a trace's
node events (``boson/simulation/engine.py``). The clock is the caller's.
"""

from __future__ import annotations

import math

PROBATION_S = 3600.0
"""Probation after a node's first failure (doubled for each earlier one within :data:`FORGET_S`)."""
MAX_PROBATION_S = 24 * 3600.0
"""The longest probation, however often the node failed."""
FORGET_S = 24 * 3600.0
"""Failures older than this no longer lengthen a probation."""
MAX_SHARE = 0.1
"""At most this share of the nodes (rounded down) is on probation at once."""


class Probation:
    """Failure history and probation ends per node (see the module docstring)."""

    def __init__(
        self,
        base_s: float = PROBATION_S,
        max_s: float = MAX_PROBATION_S,
        forget_s: float = FORGET_S,
        max_share: float = MAX_SHARE,
    ) -> None:
        if base_s < 0 or max_s < base_s or forget_s < 0 or not 0 <= max_share <= 1:
            raise ValueError("probation needs 0 <= base_s <= max_s, forget_s >= 0, share in [0, 1]")
        self.base_s = base_s
        self.max_s = max_s
        self.forget_s = forget_s
        self.max_share = max_share
        self._failures: dict[str, list[float]] = {}
        self._until: dict[str, float] = {}

    @classmethod
    def lasting(cls, base_s: float) -> Probation:
        """The default rules with a first probation of ``base_s`` (0: none; the cap rises to it)."""
        return cls(base_s, max(base_s, MAX_PROBATION_S))

    def failed(self, node_id: str, now: float) -> None:
        """``node_id`` went down at ``now``."""
        recent = [t for t in self._failures.get(node_id, ()) if now - t < self.forget_s]
        recent.append(now)
        self._failures[node_id] = recent
        self._until.pop(node_id, None)  # a dead node is not on probation: it is dead

    def returned(self, node_id: str, now: float, nodes: int) -> float:
        """``node_id`` is back at ``now`` in a cluster of ``nodes``; when its probation ends.

        ``now`` when it is trusted at once: it never failed (within
        :data:`FORGET_S`), or :data:`MAX_SHARE` of the ``nodes`` already are
        on probation.
        """
        recent = [t for t in self._failures.get(node_id, ()) if now - t < self.forget_s]
        if not recent or len(self.on_probation(now)) >= math.floor(self.max_share * nodes):
            return now
        until = now + min(self.max_s, self.base_s * 2.0 ** (len(recent) - 1))
        self._until[node_id] = until
        return until

    def on_probation(self, now: float) -> set[str]:
        """The nodes on probation at ``now`` (those that ended are forgotten)."""
        ended = [node_id for node_id, until in self._until.items() if until <= now]
        for node_id in ended:
            del self._until[node_id]
        return set(self._until)

    def ends(self, node_id: str) -> float | None:
        """When ``node_id``'s probation ends, or ``None`` if it is not on probation."""
        return self._until.get(node_id)


__all__ = ["FORGET_S", "MAX_PROBATION_S", "MAX_SHARE", "PROBATION_S", "Probation"]
