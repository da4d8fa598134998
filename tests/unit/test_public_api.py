"""``import boson``: exactly the names a user needs, resolved on first use."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types

import pytest

import boson

PUBLIC = {
    "BosonError",
    "ResourceRequest",
    "BrokerUnavailableError",
    "Client",
    "ConfigError",
    "EncodeError",
    "InvalidTaskError",
    "InvalidTaskInputError",
    "PermanentTaskError",
    "PublishNotConfirmedError",
    "InvalidQueryError",
    "RaisedAlert",
    "RecordError",
    "RecordReader",
    "RecordUnavailableError",
    "TaskNotFoundError",
    "TaskPage",
    "TaskRecord",
    "TimelineEntry",
    "Retry",
    "TaskCancelledError",
    "TaskProgress",
    "TaskFailedError",
    "TaskHandle",
    "TaskInput",
    "TaskOutput",
    "TaskRequest",
    "TaskResult",
    "TransientError",
    "__version__",
    "embedded",
    "handler",
}


def test_all_is_the_public_api() -> None:
    assert set(boson.__all__) == PUBLIC
    assert len(boson.__all__) == len(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC - {"__version__"}))
def test_every_public_name_resolves_to_what_it_names(name: str) -> None:
    value = getattr(boson, name)
    assert not isinstance(value, types.ModuleType)
    assert getattr(value, "__name__", None) == name
    assert name in dir(boson)


def test_the_sdk_module_users_import_from_keeps_every_public_name() -> None:
    # boson.client is the SDK's public face: the Client's parts live in other
    # modules, and what users import from boson.client is re-exported there.
    import boson.client
    from boson.task_building import DEFAULT_COMPLEXITY, DEFAULT_MAX_RETRIES
    from boson.task_handles import Plan, TaskHandle, TaskRequest, unwrap

    expected = {
        "Client": boson.Client,
        "DEFAULT_COMPLEXITY": DEFAULT_COMPLEXITY,
        "DEFAULT_MAX_RETRIES": DEFAULT_MAX_RETRIES,
        "Plan": Plan,
        "TaskHandle": TaskHandle,
        "TaskRequest": TaskRequest,
        "unwrap": unwrap,
    }
    assert sorted(boson.client.__all__) == sorted(expected)
    for name, value in expected.items():
        assert getattr(boson.client, name) is value


def test_errors_a_caller_catches_share_one_root() -> None:
    for name in PUBLIC:
        value = getattr(boson, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, boson.BosonError), name


def test_version_comes_from_the_package_metadata() -> None:
    assert boson.__version__ == importlib.metadata.version("boson")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(boson, "no_such_name")  # noqa: B009


def test_embedded_is_the_launcher_even_after_its_module_is_imported() -> None:
    import boson.launcher

    assert callable(boson.embedded)
    assert boson.embedded is boson.launcher.embedded


def test_importing_boson_or_the_simulator_does_not_load_the_broker_library() -> None:
    code = (
        "import sys, boson, boson.simulation.engine, boson.simulation.policies, "
        "boson.simulation.report; "
        "loaded = sorted(m for m in ('aio_pika', 'aiormq', 'boson.client') if m in sys.modules); "
        "print(','.join(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == ""
