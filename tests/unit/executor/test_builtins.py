"""The built-in handlers against numpy computed here, and their bad inputs."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from boson_services.executor.builtins import anomaly, burn, forecast, load_table, noop, stats
from boson_shared.errors import InvalidTaskInputError
from boson_shared.handlers import TaskInput, TaskOutput


def task(data: bytes | None = None, **params: object) -> TaskInput:
    return TaskInput(task_id="t1", data=data, params=params)


def task_with(params: dict[str, object]) -> TaskInput:
    return TaskInput(task_id="t1", data=None, params=params)


def csv_of(array: np.ndarray, header: str | None = "a,b,c") -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, array, delimiter=",", header=header or "", comments="")
    text = buffer.getvalue()
    return (text if header else text.lstrip("\n")).encode()


def test_stats_matches_numpy_per_column() -> None:
    rng = np.random.default_rng(1)
    array = rng.normal(size=(500, 3)) * [1, 10, 100]
    out = stats(task(csv_of(array)))
    assert out["rows"] == 500
    for i, name in enumerate("abc"):
        column = out["columns"][name]
        assert column["count"] == 500
        assert column["mean"] == pytest.approx(array[:, i].mean())
        assert column["std"] == pytest.approx(array[:, i].std(ddof=1))
        assert column["min"] == pytest.approx(array[:, i].min())
        assert column["max"] == pytest.approx(array[:, i].max())
        assert column["q0.5"] == pytest.approx(np.quantile(array[:, i], 0.5))


def test_stats_reads_npy_and_headerless_csv() -> None:
    array = np.arange(12, dtype=np.float64).reshape(6, 2)
    buffer = io.BytesIO()
    np.save(buffer, array)
    assert stats(task(buffer.getvalue()))["columns"]["c1"]["mean"] == pytest.approx(6.0)
    headerless = b"1,2\n3,4\n"
    assert stats(task(headerless))["columns"]["c0"]["max"] == 3.0


def test_stats_of_values_parameter() -> None:
    out = stats(task(values=[1, 2, 3, 4], quantiles=[0.5]))
    assert out["columns"]["c0"]["q0.5"] == 2.5


@pytest.mark.parametrize(
    ("data", "params", "message"),
    [
        (None, {}, "no input"),
        (b"a,b\n1,x\n", {}, "not a number"),
        (b"\x93NUMPYgarbage", {}, ".npy"),
        (None, {"values": ["a", "b"]}, "numbers"),
        (None, {"values": [1, 2], "quantiles": "half"}, "must be list"),
        (None, {"values": [1, 2], "quantiles": [2.0]}, "quantiles"),
    ],
)
def test_stats_rejects_bad_input(
    data: bytes | None, params: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidTaskInputError, match=message):
        stats(task(data, **params))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # Lines and columns of the file, both counted from 1.
        (b"a,b\n1,2\n3,x\n", "CSV line 3, column 2: 'x' is not a number"),
        (b"1,2\n3\n", "CSV line 2 has 1 column(s) where line 1 has 2"),
        (b"a,b,c\n1,2\n", "CSV header has 3 columns but its rows have 2"),
        (b"a,b\n", "CSV has a header but no rows"),
        (b"", "CSV has no rows"),
        (b"\x7fELF\x02\x01\x00\x00" + bytes(range(256)) * 4, "input of 1,032 bytes is not text"),
    ],
)
def test_bad_csv_is_described_without_echoing_bytes_or_warnings(data: bytes, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy UserWarning would reach the user's log
        with pytest.raises(InvalidTaskInputError) as caught:
            stats(task(data))
    assert str(caught.value).startswith(message)
    assert "\\x" not in str(caught.value)


def test_anomaly_finds_the_outlier_and_raises_an_alert() -> None:
    series = np.sin(np.arange(200) / 10.0)
    series[77] = 25.0
    out = anomaly(task(values=series.tolist()))
    assert isinstance(out, TaskOutput)
    assert [a["index"] for a in out.value["anomalies"]] == [77]
    assert len(out.alerts) == 1


def test_anomaly_without_outliers_raises_nothing() -> None:
    out = anomaly(task(values=[1.0, 2.0, 3.0, 2.0, 1.0]))
    assert out.value["anomalies"] == []
    assert out.alerts == ()


def test_forecast_extends_a_linear_trend() -> None:
    out = forecast(task(values=[2 * x + 1 for x in range(10)], horizon=3))
    assert out["forecast"] == pytest.approx([21, 23, 25])
    assert out["r2"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "params",
    [{"horizon": 0}, {"horizon": "3"}, {"degree": 9}, {"horizon": True}, {"column": 5}],
)
def test_forecast_rejects_bad_parameters(params: dict[str, object]) -> None:
    with pytest.raises(InvalidTaskInputError):
        forecast(task_with({"values": [1.0, 2.0, 3.0], **params}))


def test_burn_spends_cpu_time() -> None:
    assert burn(task(seconds=0.05))["cpu_s"] >= 0.05
    with pytest.raises(InvalidTaskInputError):
        burn(task(seconds=-1))


def test_noop_echoes() -> None:
    assert noop(task(echo=[1, 2])) == [1, 2]
    assert noop(task()) is None


def test_load_table_names_columns_from_the_header() -> None:
    names, array = load_table(b"x, y\n1,2\n", {})
    assert names == ["x", "y"]
    assert array.shape == (1, 2)
