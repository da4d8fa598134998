"""Message validation: out-of-range or ill-typed fields are typed errors.

Each case is checked twice: validating the model directly (pydantic's
``ValidationError``) and decoding an envelope that carries the bad item
(``SchemaError``, or ``UnknownKindError`` for an unknown kind), which is what
a consumer sees.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from typing import Any, get_args

import pytest
from pydantic import TypeAdapter, ValidationError

import boson_shared.contract
from boson_shared.contract import messages
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    MESSAGE_TYPES,
    AnyMessage,
    Message,
    NodeHeartbeat,
    ResourceVector,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.errors import SchemaError, UnknownKindError


def codec() -> EnvelopeCodec:
    return EnvelopeCodec(Keyring({"k1": bytes(32)}))


def task_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "task_id": "t1",
        "handler": "analysis.stats",
        "reply_to": "client-1",
        "complexity": 100.0,
        "data_size": 1000.0,
        "message_id": "m1",
        "submitted_at": 1.0,
    }
    return {**fields, **changes}


def heartbeat_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "node_id": "n1",
        "seq": 3,
        "started_at": 1.0,
        "capacity": {"cpu": 500.0, "memory": 500.0, "gpu": 0.0},
        "allocated": {"cpu": 350.0, "memory": 10.0, "gpu": 0.0},
        "slots": 4,
        "running": 1,
        "free_slots": 3,
        "measured_cpu": 0.7,
        "measured_memory": 0.2,
        "message_id": "m2",
        "sent_at": 2.0,
    }
    return {**fields, **changes}


def assert_refused(kind: str, fields: dict[str, Any]) -> None:
    model = MESSAGE_TYPES[kind]
    with pytest.raises(ValidationError):
        model.model_validate(fields)
    c = codec()
    envelope = c.encode_raw(kind, [fields])
    with pytest.raises(SchemaError) as caught:
        c.decode(envelope)
    assert isinstance(caught.value.__cause__, ValidationError)


def test_valid_messages_pass_both_ways() -> None:
    c = codec()
    for kind, fields in (
        ("task.submitted", task_fields()),
        ("node.heartbeat", heartbeat_fields()),
    ):
        (message,) = c.decode(c.encode_raw(kind, [fields]))
        assert message.kind == kind
        assert message == MESSAGE_TYPES[kind].model_validate(fields)


def test_unknown_kind() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(AnyMessage).validate_python({"kind": "task.exploded", "task_id": "t1"})
    c = codec()
    with pytest.raises(UnknownKindError):
        c.decode(c.encode_raw("task.exploded", [{"task_id": "t1"}]))


def test_kind_in_an_item_must_match_the_header() -> None:
    with pytest.raises(ValidationError):
        TaskSubmitted.model_validate({**task_fields(), "kind": "node.heartbeat"})


@pytest.mark.parametrize(
    "changes",
    [
        {"task_id": 123},
        {"handler": ["noop"]},
        {"complexity": "lots"},
        {"params": ["not", "a", "map"]},
        {"data": 12},
        {"max_retries": 2.5},
        {"explain": "maybe"},
    ],
)
def test_wrong_types(changes: dict[str, Any]) -> None:
    assert_refused("task.submitted", task_fields(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"complexity": -1.0},
        {"data_size": -0.5},
        {"complexity": math.nan},
        {"complexity": math.inf},
        {"timeout_s": 0.0},
        {"max_retries": -1},
    ],
)
def test_out_of_range_task_numbers(changes: dict[str, Any]) -> None:
    assert_refused("task.submitted", task_fields(**changes))


@pytest.mark.parametrize("value", [-0.01, 1.01, 2.0, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", ["measured_cpu", "measured_memory"])
def test_measured_utilisation_outside_unit_interval_or_nan(field: str, value: float) -> None:
    assert_refused("node.heartbeat", heartbeat_fields(**{field: value}))


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_measured_utilisation_bounds_are_inclusive(value: float) -> None:
    NodeHeartbeat.model_validate(heartbeat_fields(measured_cpu=value))


@pytest.mark.parametrize(
    "changes",
    [
        {"allocated": {"cpu": -1.0}},
        {"allocated": {"memory": -0.001}},
        {"capacity": {"gpu": -2.0}},
        {"allocated": {"cpu": math.nan}},
    ],
)
def test_negative_or_nan_allocation(changes: dict[str, Any]) -> None:
    assert_refused("node.heartbeat", heartbeat_fields(**changes))
    with pytest.raises(ValidationError):
        ResourceVector(cpu=-1.0)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("task.submitted", task_fields(task_id="")),
        ("task.submitted", task_fields(reply_to="")),
        ("task.submitted", task_fields(handler="")),
        ("task.submitted", task_fields(message_id="")),
        ("node.heartbeat", heartbeat_fields(node_id="")),
    ],
)
def test_empty_ids(kind: str, fields: dict[str, Any]) -> None:
    assert_refused(kind, fields)


def test_unknown_fields_are_refused() -> None:
    assert_refused("task.submitted", task_fields(priority="high"))


def test_cross_field_rules() -> None:
    assert_refused(
        "task.submitted",
        task_fields(data=b"x", data_ref={"digest": "a" * 64, "size": 1}),
    )
    result = {
        "task_id": "t1",
        "handler": "noop",
        "status": "failed",
        "reply_to": "c1",
        "submitted_at": 1.0,
    }
    assert_refused("task.result", result)
    with pytest.raises(ValidationError):
        TaskResult.model_validate(result)


def test_messages_are_frozen() -> None:
    message = TaskSubmitted.model_validate(task_fields())
    with pytest.raises(ValidationError):
        message.complexity = 5.0  # type: ignore[misc]


def test_every_kind_maps_to_its_model_and_has_a_schema_version() -> None:
    for kind, model in MESSAGE_TYPES.items():
        assert model.model_fields["kind"].default == kind
        assert model.schema_version >= 1


def _messages_defined_in_the_contract() -> list[type[Message]]:
    """Every top-level message class that a module of the contract package defines."""
    found: list[type[Message]] = []
    for info in pkgutil.iter_modules(boson_shared.contract.__path__):
        module = importlib.import_module(f"{boson_shared.contract.__name__}.{info.name}")
        found.extend(
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Message)
            and value is not Message
            and value.__module__ == module.__name__
        )
    return found


def test_every_message_of_the_contract_is_catalogued_and_exported() -> None:
    defined = _messages_defined_in_the_contract()
    catalogued = list(MESSAGE_TYPES.values())
    assert set(catalogued) == set(defined)
    (union, _discriminator) = get_args(AnyMessage)
    assert list(get_args(union)) == catalogued
    for model in defined:
        assert getattr(messages, model.__name__) is model
        assert model.__name__ in messages.__all__
