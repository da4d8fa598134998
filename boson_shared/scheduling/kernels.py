"""The compiled placement kernels of a strategy, made ready before a scheduler takes work.

``binpack-fgd`` places through numba-compiled loops
(:mod:`.fgd_kernels`, :mod:`.fgd_device_kernels`). numba keeps them in an
on-disk cache next to their sources; a process loads them from it in a
fraction of a second, but a fresh install (or a cache numba no longer
accepts) compiles them, which takes seconds of CPU. A
:class:`~boson_shared.scheduling.placement.Placer` readies them when it is
made; whoever starts a scheduler among other work (the in-process cluster)
calls :func:`ready_kernels` first, off its event loop, so that the compile
stalls nothing that already runs.

The other strategies are numpy only: nothing to ready.
"""

from __future__ import annotations

from boson_shared.scheduling import fgd_device_index, fgd_index
from boson_shared.scheduling.scores import Strategy


def uses_kernels(strategy: Strategy) -> bool:
    """Whether ``strategy`` places through compiled kernels."""
    return strategy == "binpack-fgd"


def kernels_ready(strategy: Strategy) -> bool:
    """Whether placing with ``strategy`` in this process would compile or load nothing."""
    if not uses_kernels(strategy):
        return True
    return fgd_index.is_warm() and fgd_device_index.is_warm()


def ready_kernels(strategy: Strategy) -> None:
    """Load (on a fresh install: compile) the kernels ``strategy`` uses, once per process.

    Blocking, and safe from any thread; a second caller waits for the first.
    """
    if uses_kernels(strategy):
        fgd_index.warm_up()
        fgd_device_index.warm_up()


__all__ = ["kernels_ready", "ready_kernels", "uses_kernels"]
