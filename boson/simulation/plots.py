"""Charts for ``boson simulate --plot``; imports matplotlib, so only on demand."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np

from boson.simulation.metrics import Metrics, Recorder
from boson.simulation.table import FloatArray


def _hours(recorder: Recorder) -> FloatArray:
    hours: FloatArray = np.asarray(recorder.sample_time, np.float64) / 3600.0
    return hours


def _save(fig: Any, path: Path) -> Path:
    """Lay out, write and close a figure; its path."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(directory: Path, results: Sequence[tuple[Metrics, Recorder]]) -> list[Path]:
    """Utilisation over time, the JCT CDF and node-utilisation spread; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for m, r in results:
        util = np.asarray(r.utilisation).reshape(-1, 3)
        axes[0].plot(_hours(r), util[:, 1], label=m.strategy, linewidth=0.9)
        axes[1].plot(_hours(r), util[:, 0], label=m.strategy, linewidth=0.9)
    axes[0].set_ylabel("memory allocated ÷ capacity")
    axes[1].set_ylabel("cpu allocated ÷ capacity")
    axes[1].set_xlabel("simulated time (h)")
    axes[0].legend(fontsize=7, ncol=3)
    written.append(_save(fig, directory / "sim-utilisation.png"))

    fig, ax = plt.subplots(figsize=(8, 5))
    for m, r in results:
        jct = r.job_jct
        if jct.size:
            ax.plot(np.sort(jct), np.linspace(0, 1, jct.size), label=m.strategy, linewidth=0.9)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (s)")
    ax.set_ylabel("fraction of jobs")
    ax.legend(fontsize=7, ncol=2)
    written.append(_save(fig, directory / "sim-jct-cdf.png"))

    fig, ax = plt.subplots(figsize=(10, 5))
    for m, r in results:
        q = np.asarray(r.node_util_quantiles).reshape(-1, 3)
        ax.plot(_hours(r), q[:, 2] - q[:, 0], label=m.strategy, linewidth=0.9)
    ax.set_xlabel("simulated time (h)")
    ax.set_ylabel("node utilisation spread (p90 − p10, dominant share)")
    ax.legend(fontsize=7, ncol=3)
    written.append(_save(fig, directory / "sim-node-spread.png"))
    return written


__all__ = ["write_all"]
