"""docs/asyncapi.yaml: generated from the code, valid AsyncAPI 3.0, complete."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import jsonschema
import pytest
import yaml
from pydantic import Field

from boson.asyncapi.document import asyncapi_document, render_yaml
from boson.asyncapi.messages import message_id
from boson.cli import main
from boson_shared.contract.channels import channels
from boson_shared.contract.messages import MESSAGE_TYPES, Message, TaskSubmitted
from boson_shared.contract.topology import HEADER_REASON, Names

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "asyncapi.yaml"
SCHEMA = REPO / "tests" / "support" / "asyncapi" / "asyncapi-3.0.0.schema.json"
REGENERATE = "regenerate it: boson spec asyncapi --output docs/asyncapi.yaml"


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def generated() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(render_yaml(asyncapi_document()))
    return loaded


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_yaml(asyncapi_document()), REGENERATE


def test_the_document_is_valid_asyncapi_3() -> None:
    errors = [e.message for e in validator().iter_errors(yaml.safe_load(COMMITTED.read_text()))]
    assert errors == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["operations"]["sendTaskSubmit"].update(action="publish"),
        lambda d: d["channels"]["taskSubmit"].update(address=7),
        lambda d: d.update(asyncapi="2.6.0"),
    ],
)
def test_the_validator_sees_a_broken_document(breakage: Any) -> None:
    document = copy.deepcopy(generated())
    breakage(document)
    assert list(validator().iter_errors(document))


class _ChangedTask(TaskSubmitted):
    """A model change nobody regenerated the document for."""

    priority: int = Field(default=0, ge=0, le=9)


class _NewEvent(Message):
    """A kind added to the registry."""

    kind: Literal["task.noticed"] = "task.noticed"
    schema_version: ClassVar[int] = 1
    task_id: str


def test_a_model_change_changes_the_document() -> None:
    kinds: dict[str, type[Message]] = {**MESSAGE_TYPES, "task.submitted": _ChangedTask}
    text = render_yaml(asyncapi_document(kinds))
    assert text != COMMITTED.read_text(encoding="utf-8")
    assert "priority" in text


def test_a_registered_kind_appears_by_itself() -> None:
    document = asyncapi_document({**MESSAGE_TYPES, "task.noticed": _NewEvent})
    message = document["components"]["messages"][message_id("task.noticed")]
    assert message["name"] == "task.noticed"
    item = message["payload"]["properties"]["items"]["items"]
    assert item["required"] == ["task_id"]
    assert "kind" not in item["properties"]
    assert document["x-boson-unrouted-kinds"] == ["task.noticed"]
    assert validator().is_valid(yaml.safe_load(render_yaml(document)))


def test_every_kind_travels_on_a_channel() -> None:
    assert generated()["x-boson-unrouted-kinds"] == []
    messages = generated()["components"]["messages"]
    assert {message["name"] for message in messages.values()} >= set(MESSAGE_TYPES)


def test_every_shared_queue_and_exchange_is_documented() -> None:
    names = Names("{namespace}")
    text = COMMITTED.read_text(encoding="utf-8")
    topology = names.shared_queues()
    for exchange in topology.exchanges:
        assert exchange.name in text
    for queue in topology.queues:
        if ".retry." not in queue.name:
            assert queue.name in text
    routed = {channel.name for channel in channels(names)}
    assert routed <= set(generated()["channels"])


def test_messages_carry_versions_units_bounds_and_required_fields() -> None:
    messages = generated()["components"]["messages"]
    chunk = messages["dataChunk"]
    assert chunk["x-boson-schema-version"] == 2
    assert chunk["payload"]["properties"]["v"]["enum"] == [1, 2]
    task = messages["taskSubmitted"]["payload"]["properties"]["items"]["items"]
    assert set(task["required"]) == {"task_id", "handler", "reply_to"}
    assert "KiB" in task["properties"]["data_size"]["description"]
    assert task["properties"]["max_retries"]["maximum"] == 25
    assert task["additionalProperties"] is False
    assert "Unix epoch" in json.dumps(task["properties"]["submitted_at"])


def test_dead_letter_headers_and_reasons() -> None:
    document = generated()
    headers = document["components"]["messages"]["deadLetter"]["headers"]
    reasons = set(headers["properties"][HEADER_REASON]["enum"])
    assert {
        "malformed-payload",
        "schema",
        "unknown-key",
        "retries-exhausted",
        "unroutable",
    } <= reasons
    assert all(name.startswith("x-boson-") for name in headers["properties"])


def test_mandatory_routes_are_marked() -> None:
    document = generated()
    assert document["channels"]["taskSubmit"]["x-boson-mandatory"] is True
    binding = document["operations"]["sendTaskSubmit"]["bindings"]["amqp"]
    assert binding["mandatory"] is True
    assert document["channels"]["taskResult"]["x-boson-mandatory"] is False
    assert document["channels"]["taskResult"]["x-boson-parks-unroutable"] is True


def test_cli_prints_and_writes_the_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["spec", "asyncapi"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text(encoding="utf-8")
    target = tmp_path / "asyncapi.yaml"
    assert main(["spec", "asyncapi", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_cli_unwritable_output_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["spec", "asyncapi", "--output", str(tmp_path / "no" / "such" / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("boson: ConfigError: cannot write")
    assert "\n" not in err
