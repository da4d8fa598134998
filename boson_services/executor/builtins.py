"""Built-in handlers for the three uses Boson is for, plus two for load tests.

* ``stats`` — data analysis: per-column count/mean/std/min/quantiles/max of
  numeric CSV (with or without a header row) or ``.npy`` array data.
* ``anomaly`` — monitoring and alerting: points of a series beyond a robust
  z-score (median and MAD, so the anomalies themselves do not hide), raising
  an alert when any are found.
* ``forecast`` — decision support: least-squares polynomial trend and the
  next ``horizon`` points.
* ``burn`` — spend a given CPU time; ``noop`` — do nothing (throughput tests).

Inputs come as the task's data (CSV text or ``.npy`` bytes) or, for small
series, as the ``values`` parameter. Bad input raises
:class:`~boson_shared.errors.InvalidTaskInputError`, which is never retried.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from boson_shared.errors import InvalidTaskInputError
from boson_shared.handlers import RaisedAlert, TaskInput, TaskOutput, handler

_NPY_MAGIC = b"\x93NUMPY"
MAX_BURN_S = 3600.0
MAX_HORIZON = 10_000

FloatArray = npt.NDArray[np.float64]


def _param(params: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = params.get(name, default)
    # bool is an int in Python; a flag where a number is wanted is still wrong.
    if kind in (int, float) and isinstance(value, bool):
        raise InvalidTaskInputError(f"parameter {name!r} must be a number, not a bool")
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        raise InvalidTaskInputError(
            f"parameter {name!r} must be {kind.__name__}, not {type(value).__name__}"
        )
    return value


def load_table(data: bytes | None, params: Mapping[str, Any]) -> tuple[list[str], FloatArray]:
    """Column names and a 2-D float array from CSV bytes, .npy bytes or ``values``."""
    if data is None:
        values = params.get("values")
        if values is None:
            raise InvalidTaskInputError("no input: send data (CSV or .npy) or a 'values' list")
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidTaskInputError(f"'values' must be numbers: {error}") from error
    elif data.startswith(_NPY_MAGIC):
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float64)
        except (ValueError, OSError) as error:
            raise InvalidTaskInputError(f"unreadable .npy data: {error}") from error
    else:
        return _load_csv(data)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.size == 0:
        raise InvalidTaskInputError(f"expected a 1-D or 2-D array, got shape {array.shape}")
    return [f"c{i}" for i in range(array.shape[1])], array


def _load_csv(data: bytes) -> tuple[list[str], FloatArray]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if "\x00" in text or (not text and data):
        # Never echo the bytes: they may be large, binary or private.
        raise InvalidTaskInputError(
            f"input of {len(data):,} bytes is not text: expected CSV (UTF-8) or .npy data"
        )
    lines = text.splitlines()
    first_line = next((line for line in lines if line.strip()), "")
    if not first_line:
        raise InvalidTaskInputError("CSV has no rows")
    cells = [cell.strip() for cell in first_line.split(",")]
    has_header = not all(_is_number(cell) for cell in cells if cell)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty body is reported below
            array = np.loadtxt(
                io.StringIO(text),
                delimiter=",",
                skiprows=1 if has_header else 0,
                dtype=np.float64,
                ndmin=2,
            )
    except ValueError as error:
        raise InvalidTaskInputError(_first_csv_problem(lines, len(cells))) from error
    if array.size == 0:
        raise InvalidTaskInputError("CSV has a header but no rows")
    names = cells if has_header else [f"c{i}" for i in range(array.shape[1])]
    if len(names) != array.shape[1]:
        raise InvalidTaskInputError(
            f"CSV header has {len(names)} columns but its rows have {array.shape[1]}"
        )
    return names, array


def _first_csv_problem(lines: Sequence[str], columns: int) -> str:
    """Where a CSV stops being numeric, as lines and columns of the file, both from 1."""
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (number == 1 and not _all_numbers(line)):
            continue
        cells = line.split(",")
        if len(cells) != columns:
            return f"CSV line {number} has {len(cells)} column(s) where line 1 has {columns}"
        for column, cell in enumerate(cells, start=1):
            if cell.strip() and not _is_number(cell.strip()):
                shown = ascii(cell.strip()[:20])
                return f"CSV line {number}, column {column}: {shown} is not a number"
    return "CSV is not numeric"


def _all_numbers(line: str) -> bool:
    return all(_is_number(cell.strip()) for cell in line.split(",") if cell.strip())


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def column_stats(array: FloatArray, quantiles: Sequence[float]) -> list[dict[str, float | int]]:
    """Per-column statistics, ignoring NaNs; each column's figures as plain floats."""
    counts = np.sum(~np.isnan(array), axis=0)
    out: list[dict[str, float | int]] = []
    qs = np.nanquantile(array, quantiles, axis=0) if len(quantiles) else np.empty((0, 0))
    means = np.nanmean(array, axis=0)
    stds = np.nanstd(array, axis=0, ddof=1) if array.shape[0] > 1 else np.zeros(array.shape[1])
    mins = np.nanmin(array, axis=0)
    maxs = np.nanmax(array, axis=0)
    for column in range(array.shape[1]):
        entry: dict[str, float | int] = {
            "count": int(counts[column]),
            "mean": float(means[column]),
            "std": float(stds[column]),
            "min": float(mins[column]),
            "max": float(maxs[column]),
        }
        for q, row in zip(quantiles, qs, strict=True):
            entry[f"q{q:g}"] = float(row[column])
        out.append(entry)
    return out


@handler("stats", mode="process")
def stats(task: TaskInput) -> dict[str, Any]:
    """Per-column count, mean, std (n-1), min, quantiles and max."""
    quantiles = _param(task.params, "quantiles", list, [0.25, 0.5, 0.75])
    if not all(isinstance(q, int | float) and 0 <= q <= 1 for q in quantiles):
        raise InvalidTaskInputError("quantiles must be numbers in [0, 1]")
    names, array = load_table(task.data, task.params)
    if np.all(np.isnan(array), axis=0).any():
        raise InvalidTaskInputError("a column has no numeric values")
    per_column = column_stats(array, [float(q) for q in quantiles])
    return {"rows": int(array.shape[0]), "columns": dict(zip(names, per_column, strict=True))}


def _series(task: TaskInput) -> FloatArray:
    _, array = load_table(task.data, task.params)
    column = _param(task.params, "column", int, 0)
    if not 0 <= column < array.shape[1]:
        raise InvalidTaskInputError(f"column {column} out of range (0..{array.shape[1] - 1})")
    series = array[:, column]
    if np.isnan(series).any():
        raise InvalidTaskInputError("the series has missing values")
    return series


@handler("anomaly", mode="process")
def anomaly(task: TaskInput) -> TaskOutput:
    """Points whose robust z-score exceeds ``threshold`` (default 3.5)."""
    threshold = _param(task.params, "threshold", float, 3.5)
    if threshold <= 0:
        raise InvalidTaskInputError("threshold must be positive")
    series = _series(task)
    median = float(np.median(series))
    mad = float(np.median(np.abs(series - median)))
    if mad == 0.0:
        # Over half the points are equal: any other value is an outlier.
        scores = np.where(series == median, 0.0, np.inf)
    else:
        scores = 0.6745 * (series - median) / mad
    flagged = np.flatnonzero(np.abs(scores) > threshold)
    found = [
        {"index": int(i), "value": float(series[i]), "score": float(scores[i])}
        for i in flagged[:1000]
    ]
    value = {"count": int(series.size), "anomalies": found, "total_anomalies": int(flagged.size)}
    alerts: tuple[RaisedAlert, ...] = ()
    if flagged.size:
        alerts = (
            RaisedAlert(
                detail=f"{flagged.size} anomalous points in task {task.task_id} "
                f"(|robust z| > {threshold:g})",
                value=float(flagged.size),
            ),
        )
    return TaskOutput(value, alerts)


@handler("forecast", mode="process")
def forecast(task: TaskInput) -> dict[str, Any]:
    """Least-squares polynomial trend (``degree``, default 1) and the next ``horizon`` points."""
    horizon = _param(task.params, "horizon", int, 5)
    degree = _param(task.params, "degree", int, 1)
    if not 1 <= horizon <= MAX_HORIZON:
        raise InvalidTaskInputError(f"horizon must be in 1..{MAX_HORIZON}")
    if not 0 <= degree <= 5:
        raise InvalidTaskInputError("degree must be in 0..5")
    series = _series(task)
    if series.size <= degree:
        raise InvalidTaskInputError(f"need more than {degree} points for degree {degree}")
    x = np.arange(series.size, dtype=np.float64)
    coefficients = np.polyfit(x, series, degree)
    fitted = np.polyval(coefficients, x)
    residual = float(np.sum((series - fitted) ** 2))
    total = float(np.sum((series - series.mean()) ** 2))
    future = np.polyval(coefficients, np.arange(series.size, series.size + horizon))
    return {
        "coefficients": [float(c) for c in coefficients],
        "r2": 1.0 - residual / total if total > 0 else 1.0,
        "forecast": [float(v) for v in future],
    }


@handler("burn", mode="process")
def burn(task: TaskInput) -> dict[str, float]:
    """Spend ``seconds`` of CPU time (default 0.1), for load tests."""
    seconds = _param(task.params, "seconds", float, 0.1)
    if not 0 <= seconds <= MAX_BURN_S:
        raise InvalidTaskInputError(f"seconds must be in 0..{MAX_BURN_S:g}")
    start = time.process_time()
    spins = 0
    while time.process_time() - start < seconds:
        spins += 1
    return {"cpu_s": time.process_time() - start, "spins": float(spins)}


@handler("noop", mode="inline")
def noop(task: TaskInput) -> Any:
    """Return ``params['echo']`` (or nothing): the cheapest possible task."""
    return task.params.get("echo")


@handler("gpu_devices", mode="process")
def gpu_devices(task: TaskInput) -> dict[str, Any]:
    """The GPU devices this task was given, as its worker process sees them.

    Sleeps ``seconds`` first (default 0), so tasks overlap in a demo.
    """
    seconds = _param(task.params, "seconds", float, 0.0)
    if not 0 <= seconds <= MAX_BURN_S:
        raise InvalidTaskInputError(f"seconds must be in 0..{MAX_BURN_S:g}")
    time.sleep(seconds)
    return {
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "NVIDIA_VISIBLE_DEVICES": os.environ.get("NVIDIA_VISIBLE_DEVICES"),
        "memory_budget_mib": os.environ.get("BOSON_GPU_MEMORY_BUDGET_MIB"),
        "devices": list(task.gpu_devices),
        "pid": os.getpid(),
    }


__all__ = [
    "anomaly",
    "burn",
    "column_stats",
    "forecast",
    "gpu_devices",
    "load_table",
    "noop",
    "stats",
]
