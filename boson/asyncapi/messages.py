"""The messages of the AsyncAPI document: one per kind, its schema from the pydantic model.

A message's ``payload`` describes the envelope's plaintext (``docs/wire-format.md``),
the map ``{"v": schema version, "items": [item, …]}``, where an item is the model's
fields without ``kind`` (the kind travels in the envelope header). The schemas of
every model and of the types they use go to ``components.schemas``, once each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic.json_schema import models_json_schema

from boson_shared.contract.messages import Message
from boson_shared.contract.topology import HEADER_ATTEMPT, HEADER_ERROR, HEADER_KIND

AMQP_BINDING_VERSION = "0.3.0"
CONTENT_TYPE = "application/x-boson-envelope"


def message_id(kind: str) -> str:
    """The AsyncAPI id of a kind: ``task.submitted`` → ``taskSubmitted``."""
    head, *rest = re.split(r"[._-]", kind)
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _first_paragraph(model: type[Message]) -> str:
    doc = (model.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def _item_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A top-level model's schema as an item: no ``kind`` (it travels in the header)."""
    item = dict(schema)
    properties = dict(item.get("properties", {}))
    properties.pop("kind", None)
    item["properties"] = properties
    if "required" in item:
        item["required"] = [name for name in item["required"] if name != "kind"]
    return item


def component_schemas(kinds: Mapping[str, type[Message]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(components.schemas, item schema per kind), refs pointing into components."""
    models = list(dict.fromkeys(kinds.values()))
    _, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    items = {kind: _item_schema(defs[model.__name__]) for kind, model in kinds.items()}
    return dict(sorted(defs.items())), items


def _kind_header(kind: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "string",
        "description": (
            "The message kind, as a label only: the authenticated kind is the one "
            "in the envelope header. Set on every message Boson publishes."
        ),
    }
    if kind is not None:
        schema["const"] = kind
    return schema


def _retry_headers() -> dict[str, Any]:
    return {
        HEADER_ATTEMPT: {
            "type": "integer",
            "minimum": 1,
            "description": (
                "Which attempt this delivery is (absent on the first). Set when a "
                "failed handler's message comes back from a delayed-retry queue."
            ),
        },
        HEADER_ERROR: {
            "type": "string",
            "description": "The previous attempt's error, one line (type: message).",
        },
    }


def message_doc(kind: str, model: type[Message], item: Mapping[str, Any]) -> dict[str, Any]:
    """The message of one kind: its headers, and its payload with ``item`` as the item schema."""
    versions = sorted({model.schema_version, *model.also_reads})
    return {
        "name": kind,
        "title": model.__name__,
        "summary": _first_paragraph(model),
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {HEADER_KIND: _kind_header(kind), **_retry_headers()},
        },
        "payload": {
            "type": "object",
            "description": (
                "The envelope's plaintext (docs/wire-format.md §5), shown as JSON: msgpack "
                "map keys are strings, bytes fields (format: binary) are msgpack bin, times "
                f"are float seconds. Writers send v = {model.schema_version}; readers "
                f"accept {', '.join(map(str, versions))}. One message is one item."
            ),
            "required": ["v", "items"],
            "additionalProperties": False,
            "properties": {
                "v": {
                    "type": "integer",
                    "enum": versions,
                    "description": "The schema version of the items.",
                },
                "items": {"type": "array", "minItems": 1, "items": dict(item)},
            },
        },
        "bindings": {"amqp": {"messageType": kind, "bindingVersion": AMQP_BINDING_VERSION}},
        "x-boson-kind": kind,
        "x-boson-schema-version": model.schema_version,
        "x-boson-reads-versions": versions,
    }


__all__ = [
    "AMQP_BINDING_VERSION",
    "CONTENT_TYPE",
    "component_schemas",
    "message_doc",
    "message_id",
]
