"""The simulator's report: the comparison table, the load summary and the charts.

Shared by ``boson simulate`` and ``benchmarks/trace_quality.py`` so that both
print the same table from the same :class:`~boson.simulation.metrics.Metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from boson.simulation.metrics import SIZE_CLASSES, Metrics, Recorder, offered_load
from boson.simulation.trace_types import Cluster, Trace
from boson_shared.errors import ConfigError

COLUMNS = (
    ("strategy", "strategy"),
    ("JCT mean", "jct_mean"),
    ("JCT p95", "jct_p95"),
    ("JCT p99", "jct_p99"),
    ("wait mean", "delay_mean"),
    ("wait p99", "delay_p99"),
    ("wait max", "delay_max"),
    ("wait p99 S/M/L", "delay_by_size"),
    ("slowdown", "slowdown_mean"),
    ("util cpu", "util_cpu"),
    ("util mem", "util_mem"),
    ("util gpu", "util_gpu"),
    ("frag", "fragmentation"),
    ("frag gpu", "gpu_fragmentation"),
    ("CV", "imbalance_cv"),
    ("Jain", "jain"),
    ("re-placed", "replaced"),
    ("never fit/plc", "never"),
    ("makespan/LB", "makespan_ratio"),
    ("wall s", "wall_seconds"),
)


def number_text(value: float) -> str:
    """Three decimals, three significant digits below 0.1 (fragmentation is a
    share of a few thousandths, where three decimals would hide the differences)."""
    if abs(value) >= 10:
        return f"{value:.0f}"
    if value == 0 or abs(value) >= 0.1:
        return f"{value:.3f}"
    return f"{value:.3g}"


def _cells(m: Metrics) -> list[str]:
    values: dict[str, object] = m.as_dict()
    values["util_cpu"], values["util_mem"], values["util_gpu"] = m.utilisation
    # Size classes without an instance show as "-".
    values["delay_by_size"] = "/".join(
        number_text(m.delay_p99_by_size[name]) if name in m.delay_p99_by_size else "-"
        for name, _ in SIZE_CLASSES
    )
    values["never"] = f"{m.never_fits}/{m.never_placed}"
    out = []
    for _, key in COLUMNS:
        value = values[key]
        if isinstance(value, float):
            out.append(number_text(value))
        else:
            out.append(str(value))
    return out


def render_table(title: str, results: Sequence[Metrics]) -> Table:
    """The comparison table: times in seconds, shares as fractions."""
    table = Table(title=title, title_justify="left")
    for header, _ in COLUMNS:
        table.add_column(header, justify="left" if header == "strategy" else "right")
    for m in results:
        table.add_row(*_cells(m))
    return table


def describe(trace: Trace, cluster: Cluster) -> list[str]:
    """What was loaded, what was left out and why, and the offered load."""
    w = trace.workload
    lines = [
        f"tasks {w.tasks:,} ({int(w.instances.sum()):,} instances, {w.jobs:,} jobs); "
        f"nodes {len(cluster.node_ids):,}; node events {trace.events.time.size}",
    ]
    for reason, rows in sorted(trace.skipped.rows.items()):
        lines.append(
            f"  left out: {rows:,} rows ({trace.skipped.instances[reason]:,} instances): {reason}"
        )
    load = offered_load(w, cluster.capacity)
    lines.append(
        "offered load: cpu {:.2f}, memory {:.2f}, gpu {:.2f}".format(*(float(x) for x in load))
    )
    return lines


def write_plots(directory: Path, results: Sequence[tuple[Metrics, Recorder]]) -> list[Path]:
    """The three charts as PNGs in ``directory``; a clear error without matplotlib."""
    try:
        from boson.simulation import plots as simulate_plots
    except ImportError as e:  # matplotlib is the optional "plot" extra
        raise ConfigError("--plot needs matplotlib: pip install 'boson[plot]'") from e
    return simulate_plots.write_all(directory, results)


__all__ = ["COLUMNS", "describe", "number_text", "render_table", "write_plots"]
