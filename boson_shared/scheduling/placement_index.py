"""An incremental index that finds the ``binpack`` / ``spread`` choice without a full rescore.

Both strategies score a node as a monotone function of ``u + t`` (allocated
utilisation plus what the demand adds, see ``scores``). Nodes of similar
capacity have similar ``t``, so the winner is almost always the first
*feasible* node in order of ``u`` — descending for binpack, ascending for
spread. The index keeps the alive nodes sorted that way, as one
struct-of-arrays block (``key, index, free×3, weight×3`` per column, so that
moving a node is a single slice copy), and answers a placement in two steps:

1. **first fit** — vectorised feasibility over a prefix of the order, in
   chunks that double, until some node fits;
2. **bound** — from there, only nodes whose ``u`` plus the largest ``t`` any
   node could give still beats the first fit's score can win; that range is
   found by binary search on the sorted keys and scored exactly at once.

A placement changes one node: its column moves to its new rank by shifting
only the columns in between. Rows are ordered by (key, node index), scores
are computed from the table with the same formulas and roundings as
``scores``, and later rows lose ties — so the choice is bit-for-bit the full
rescore's (``scores.choose``), which the tests check.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from boson_shared.scheduling.scores import weights
from boson_shared.scheduling.table import FIT_EPSILON as _EPS
from boson_shared.scheduling.table import FloatArray, NodeTable

# Field rows of the struct-of-arrays block.
_KEY, _IDX, _F0, _F1, _F2, _W0, _W1, _W2 = range(8)
_FIELDS = 8
_FIRST_CHUNK = 256  # rows; vectorised work this small costs about one numpy call
_REBUILD_FRACTION = 8  # more dirty rows than n/8: re-sorting beats moving rows one by one


class SortedIndex:
    """Alive nodes of a table, sorted by allocated utilisation."""

    def __init__(self, table: NodeTable, order: Literal["desc", "asc"]) -> None:
        self._table = table
        self._desc = order == "desc"
        self.watcher = table.watch()
        self._n = 0
        self._chunk = _FIRST_CHUNK
        self._d: FloatArray = np.empty((_FIELDS, 0))
        self._wmax = (0.0, 0.0, 0.0)
        self._wmin = (0.0, 0.0, 0.0)
        self._node_key: list[float] = []
        self._in: list[bool] = []
        self.rebuild()

    # -- building --------------------------------------------------------

    def rebuild(self) -> None:
        """Re-sort every alive node from the table (after bulk changes)."""
        table = self._table
        self.watcher.dirty.clear()
        alive = np.flatnonzero(table.alive)
        cap = table.capacity
        w = weights(cap)
        alloc = table.allocated
        u = alloc[:, 0] * w[:, 0] + alloc[:, 1] * w[:, 1] + alloc[:, 2] * w[:, 2]
        key = -u if self._desc else u
        order = alive[np.lexsort((alive, key[alive]))]
        n = order.size
        d = np.zeros((_FIELDS, max(16, 2 * n)))
        d[_KEY, :n] = key[order]
        d[_IDX, :n] = order
        d[_F0 : _F2 + 1, :n] = (cap[order] - alloc[order]).T
        d[_W0 : _W2 + 1, :n] = w[order].T
        self._d = d
        self._n = n
        self._node_key = key.tolist()
        inside = np.zeros(len(table), dtype=bool)
        inside[order] = True
        self._in = inside.tolist()
        self._bounds()

    def _bounds(self) -> None:
        live = self._d[_W0 : _W2 + 1, : self._n]
        if self._n:
            self._wmax = tuple(live.max(axis=1).tolist())
            self._wmin = tuple(live.min(axis=1).tolist())
        else:
            self._wmax = self._wmin = (0.0, 0.0, 0.0)

    def sync(self) -> None:
        """Bring the index in step with rows changed behind its back."""
        dirty = self.watcher.dirty
        if not dirty:
            return
        table = self._table
        if len(table) != len(self._in) or len(dirty) * _REBUILD_FRACTION > max(self._n, 64):
            self.rebuild()
            return
        rows = sorted(dirty)
        dirty.clear()
        reweighted = False
        for i in rows:
            alive = bool(table.alive[i])
            if self._in[i]:
                p = self._position(i)
                w_new = weights(table.capacity[i : i + 1])[0]
                if alive and np.array_equal(w_new, self._d[_W0 : _W2 + 1, p]):
                    self.moved(i, p)
                    continue
                self._remove(p)
                reweighted = True
                if alive:
                    self._insert(i)
            elif alive:
                self._insert(i)
                reweighted = True
        if reweighted:
            self._bounds()

    # -- queries ---------------------------------------------------------

    def best(self, r0: float, r1: float, r2: float) -> int:
        """Sorted position of the best feasible node for the demand, or -1."""
        n = self._n
        d = self._d
        f0 = d[_F0]
        f1 = d[_F1]
        f2 = d[_F2]
        lo = 0
        # Start with a chunk about twice as long as the last first fit was deep:
        # the run of full nodes ahead of it changes slowly.
        step = self._chunk
        first = -1
        while lo < n:
            hi = min(lo + step, n)
            # The table's fit rule: the one tolerance, on the same floats.
            fits = (f0[lo:hi] + _EPS >= r0) & (f1[lo:hi] + _EPS >= r1) & (f2[lo:hi] + _EPS >= r2)
            j = int(fits.argmax())
            if fits[j]:
                first = lo + j
                break
            lo = hi
            step *= 2
        if first < 0:
            return -1
        self._chunk = max(_FIRST_CHUNK, 1 << (2 * first).bit_length())
        key = d[_KEY]
        # Score of the first fit, and the last rank any node could beat it from.
        if self._desc:
            w = self._wmax
            bound_t = r0 * w[0] + r1 * w[1] + r2 * w[2]
            t = d[_W0, first] * r0 + d[_W1, first] * r1 + d[_W2, first] * r2
            best = -key[first] + t
            # -key + bound_t > best  <=>  key < bound_t - best (widened: rounding)
            edge = bound_t - best
        else:
            w = self._wmin
            bound_t = r0 * w[0] + r1 * w[1] + r2 * w[2]
            t = d[_W0, first] * r0 + d[_W1, first] * r1 + d[_W2, first] * r2
            best = 1.0 - (key[first] + t)
            edge = 1.0 - best - bound_t
        stop = int(key[:n].searchsorted(edge + 1e-9 * (1.0 + abs(edge)), side="right"))
        if stop <= first + 1:
            return first
        sl = slice(first, stop)
        fits = (f0[sl] + _EPS >= r0) & (f1[sl] + _EPS >= r1) & (f2[sl] + _EPS >= r2)
        t_all = d[_W0, sl] * r0 + d[_W1, sl] * r1 + d[_W2, sl] * r2
        s = -key[sl] + t_all if self._desc else 1.0 - (key[sl] + t_all)
        s[~fits] = -math.inf
        return first + int(s.argmax())

    def node_at(self, pos: int) -> int:
        """The table row of the node at sorted position ``pos``."""
        return int(self._d[_IDX, pos])

    # -- updates ---------------------------------------------------------

    def moved(self, i: int, p: int) -> None:
        """Node ``i`` (at sorted position ``p``) changed its allocation: re-rank it."""
        table = self._table
        a0, a1, a2 = table._alloc[i].tolist()
        c0, c1, c2 = table._cap[i].tolist()
        d = self._d
        col = d[:, p].tolist()
        w0, w1, w2 = col[_W0], col[_W1], col[_W2]
        u = a0 * w0 + a1 * w1 + a2 * w2
        k = -u if self._desc else u
        old = self._node_key[i]
        self._node_key[i] = k
        col[_KEY] = k
        col[_F0] = c0 - a0
        col[_F1] = c1 - a1
        col[_F2] = c2 - a2
        q = p
        if k != old:
            q = self._rank(k, i)
            if k > old:
                q -= 1  # the node's own old column sits before its new rank
            if q < p:
                d[:, q + 1 : p + 1] = d[:, q:p]
            elif q > p:
                d[:, p:q] = d[:, p + 1 : q + 1]
        d[:, q] = col

    def _rank(self, k: float, i: int) -> int:
        """How many columns sort before (key ``k``, index ``i``)."""
        key = self._d[_KEY, : self._n]
        # ndarray.searchsorted, not np.searchsorted: the wrapper costs as much as the search.
        lo = int(key.searchsorted(k, side="left"))
        if lo < self._n and key[lo] == k:
            hi = int(key.searchsorted(k, side="right"))
            lo += int(self._d[_IDX, lo:hi].searchsorted(i))
        return lo

    def _position(self, i: int) -> int:
        pos = self._rank(self._node_key[i], i)
        if pos >= self._n or int(self._d[_IDX, pos]) != i:  # pragma: no cover - invariant
            raise AssertionError(f"placement index lost node {i}")
        return pos

    def _remove(self, p: int) -> None:
        n = self._n
        i = int(self._d[_IDX, p])
        self._d[:, p : n - 1] = self._d[:, p + 1 : n]
        self._n = n - 1
        self._in[i] = False

    def _insert(self, i: int) -> None:
        n = self._n
        if n == self._d.shape[1]:
            grown = np.zeros((_FIELDS, 2 * n))
            grown[:, :n] = self._d[:, :n]
            self._d = grown
        table = self._table
        a = table.allocated[i]
        w = weights(table.capacity[i : i + 1])[0]
        u = float(a[0] * w[0] + a[1] * w[1] + a[2] * w[2])
        k = -u if self._desc else u
        q = self._rank(k, i)
        d = self._d
        d[:, q + 1 : n + 1] = d[:, q:n]
        d[_KEY, q] = k
        d[_IDX, q] = i
        d[_F0 : _F2 + 1, q] = table.capacity[i] - a
        d[_W0 : _W2 + 1, q] = w
        self._node_key[i] = k
        self._in[i] = True
        self._n = n + 1

    def __len__(self) -> int:
        return self._n


__all__ = ["SortedIndex"]
