"""The bus as an AsyncAPI 3.0 document, generated from the models and the topology.

``boson spec asyncapi`` prints it; ``docs/asyncapi.yaml`` is its committed
output, and a test fails when the two differ. Nothing here is written by
hand that the code already knows: message schemas come from the pydantic
models (:data:`~boson_shared.contract.messages.MESSAGE_TYPES`, so a new kind
appears by itself), routes and queues from
:func:`~boson_shared.contract.channels.channels`, header names, dead-letter
reasons and name rules from the modules that use them. The prose says what the
code cannot: how a reader should treat each fact.

Every message travels as one envelope (``docs/wire-format.md``): a message's
``payload`` schema here describes the envelope's *plaintext*, the map
``{"v": schema version, "items": [item, …]}``.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from boson_shared.contract.channels import (
    CLIENT_ID,
    CLIENT_QUEUE_EXPIRES_MS,
    Channel,
    channels,
)
from boson_shared.contract.envelope import CIPHERS
from boson_shared.contract.keyring import KEY_ID_PATTERN
from boson_shared.contract.messages import MESSAGE_TYPES, Message, TaskSubmitted, kind_of
from boson_shared.contract.topology import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_KIND,
    HEADER_REASON,
    HEADER_SOURCE_QUEUE,
    REASON_PERMANENT_ERROR,
    REASON_RETRIES_EXHAUSTED,
    REASON_UNEXPECTED_KIND,
    REASON_UNROUTABLE,
    Names,
    rk_data_reply,
    rk_data_stored,
    rk_result,
)
from boson_shared.errors import DecodeError
from boson_shared.settings import BosonSettings

# The transfer service's refusals are DecodeErrors too: imported so that the
# reasons listed never depend on what else this process happened to import.
from boson_shared.transfer import errors as _transfer_errors  # noqa: F401

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
CONTENT_TYPE = "application/x-boson-envelope"
NAMESPACE = "{namespace}"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

_PARAMETERS: Mapping[str, str] = {
    "node_id": "The executor's node id (an Identifier).",
    "client_id": "The client id a task names in reply_to (an Identifier).",
    "instance_id": "A service replica's instance id ([A-Za-z0-9_-]{1,64}).",
    "reason": "The alert's reason (see the alert message's reason enum).",
}


def message_id(kind: str) -> str:
    """The AsyncAPI id of a kind: ``task.submitted`` → ``taskSubmitted``."""
    head, *rest = re.split(r"[._-]", kind)
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _decode_reasons() -> list[str]:
    reasons: list[str] = []
    pending: list[type[DecodeError]] = [DecodeError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not DecodeError and cls.reason not in reasons:
            reasons.append(cls.reason)
    return sorted(reasons)


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


def _schemas(kinds: Mapping[str, type[Message]]) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _message(kind: str, model: type[Message], item: Mapping[str, Any]) -> dict[str, Any]:
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


def _queue(queue_name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": queue_name, "arguments": dict(arguments)}


def _channel(channel: Channel, kinds: Mapping[str, type[Message]]) -> dict[str, Any]:
    carried = [kind_of(model) for model in channel.kinds if kind_of(model) in kinds]
    consumers = [
        {
            "role": consumer.role,
            "queue": consumer.queue.name,
            "bindingKey": consumer.binding_key,
            "queueArguments": dict(consumer.queue.arguments()),
            # Exclusive: the consumer's own connection's queue, made again on reconnect.
            **({"exclusive": True} if consumer.queue.exclusive else {}),
        }
        for consumer in channel.consumers
    ]
    parameters = {
        name: {"description": _PARAMETERS[name]}
        for name in _PLACEHOLDER.findall(channel.routing_key)
    }
    published = ", ".join(channel.publishers)
    read_by = ", ".join(sorted({c.role for c in channel.consumers})) or "no service"
    description = (
        f"{channel.summary} Exchange `{channel.exchange}` ({channel.exchange_type}), "
        f"routing key `{channel.routing_key}`. Published by: {published}. "
        f"Consumed by: {read_by}."
    )
    if channel.parks_unroutable:
        description += (
            " If no queue is bound, the message is parked in the dead-letter queue with "
            f"{HEADER_REASON} `{REASON_UNROUTABLE}` and this routing key, never dropped."
        )
    if channel.mandatory:
        description += (
            " Published mandatory: if no queue is bound the broker returns the message "
            "(basic.return, NO_ROUTE) and the publisher must treat it as not sent."
        )
    doc: dict[str, Any] = {
        "address": channel.routing_key,
        "title": channel.name,
        "description": description,
        "messages": {
            message_id(kind): {"$ref": f"#/components/messages/{message_id(kind)}"}
            for kind in carried
        },
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": channel.exchange,
                    "type": channel.exchange_type,
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "x-boson-publishers": list(channel.publishers),
        "x-boson-consumers": consumers,
        "x-boson-mandatory": channel.mandatory,
        "x-boson-parks-unroutable": channel.parks_unroutable,
    }
    if parameters:
        doc["parameters"] = parameters
    return doc


def _operations(channel: Channel, carried: Sequence[str]) -> dict[str, Any]:
    refs = [{"$ref": f"#/channels/{channel.name}/messages/{message_id(k)}"} for k in carried]
    name = channel.name[:1].upper() + channel.name[1:]
    operations: dict[str, Any] = {
        f"send{name}": {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel.name}"},
            "summary": f"Published by: {', '.join(channel.publishers)}.",
            "messages": refs,
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": channel.mandatory,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
            "x-boson-roles": list(channel.publishers),
        }
    }
    roles = sorted({consumer.role for consumer in channel.consumers})
    if roles:
        operations[f"receive{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel.name}"},
            "summary": f"Consumed by: {', '.join(roles)} (manual acknowledgement).",
            "messages": refs,
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
            "x-boson-roles": roles,
        }
    return operations


def _dead_letter_channel(names: Names, kinds: Mapping[str, type[Message]]) -> dict[str, Any]:
    reasons = sorted(
        {
            *_decode_reasons(),
            REASON_UNEXPECTED_KIND,
            REASON_PERMANENT_ERROR,
            REASON_RETRIES_EXHAUSTED,
            REASON_UNROUTABLE,
        }
    )
    return {
        "address": "{source_queue}",
        "title": "deadLetter",
        "description": (
            f"Messages no consumer could process: bad bytes, unexpected kinds, exhausted "
            f"retries. Exchange `{names.dead_exchange}` (fanout) into queue "
            f"`{names.dead_letter_queue}`; the routing key is the queue the message came "
            f"from (for a parked unroutable reply: its own routing key). The body is the original "
            f"envelope, unchanged. Boson's consumers publish "
            f"these with the {HEADER_REASON} headers; a queue's own dead-lettering (a "
            f"rejected delivery) adds RabbitMQ's x-death / x-first-death-* headers instead."
        ),
        "parameters": {"source_queue": {"description": "The queue the message was taken from."}},
        "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": names.dead_exchange,
                    "type": "fanout",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "x-boson-publishers": [
            "scheduler",
            "balancer",
            "executor",
            "monitor",
            "transfer",
            "client",
        ],
        "x-boson-consumers": [
            {
                "role": "operator",
                "queue": names.dead_letter_queue,
                "bindingKey": "#",
                "queueArguments": dict(names.base().queue(names.dead_letter_queue).arguments()),
            }
        ],
        "x-boson-mandatory": False,
        "x-boson-reasons": reasons,
    }


def _dead_letter_message(kinds: Mapping[str, type[Message]], reasons: list[str]) -> dict[str, Any]:
    return {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "Any envelope (of any kind, or unreadable bytes) with why it was given up.",
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "required": [HEADER_REASON, HEADER_ERROR],
            "properties": {
                HEADER_REASON: {
                    "type": "string",
                    "enum": reasons,
                    "description": "Why: a decode error's token, or what the runtime decided.",
                },
                HEADER_ERROR: {
                    "type": "string",
                    "description": "The error, one line (type: message); never key material.",
                },
                HEADER_SOURCE_QUEUE: {
                    "type": "string",
                    "description": (
                        "The queue the message was consumed from (absent on a parked "
                        "unroutable reply, which no queue ever held)."
                    ),
                },
                HEADER_ATTEMPT: {
                    "type": "integer",
                    "minimum": 1,
                    "description": "The last attempt made (absent for decode errors).",
                },
                HEADER_KIND: {
                    "type": "string",
                    "enum": sorted(kinds),
                    "description": (
                        "The kind, when it can be read; for bytes that did not decode it "
                        "is read unauthenticated from the header, a label only."
                    ),
                },
            },
        },
        "payload": {
            "type": "string",
            "format": "binary",
            "description": "The original message body, unchanged.",
        },
    }


def _overview(names: Names) -> str:
    namespace = BosonSettings.model_json_schema()["properties"]["namespace"]
    reply_to = TaskSubmitted.model_json_schema()["properties"]["reply_to"]
    client_queue = names.client_queue(CLIENT_ID)
    client_keys = ", ".join(
        f"`{key}`"
        for key in (rk_result(CLIENT_ID), rk_data_reply(CLIENT_ID), rk_data_stored(CLIENT_ID))
    )
    client = names.client(CLIENT_ID, CLIENT_QUEUE_EXPIRES_MS).queue(client_queue)
    submit = names.submit().queue(names.submit_queue)
    ciphers = ", ".join(f"`{name}`" for name in CIPHERS)
    paragraphs = (
        "The Boson bus: every exchange, routing key and queue, the message kinds on each, "
        "and who publishes and consumes them. Generated by `boson spec asyncapi` from the "
        "pydantic models and the topology; do not edit by hand.",
        "**Envelope.** Every message body is one Boson envelope (docs/wire-format.md): a "
        "header naming the kind, then msgpack (optionally zstd) under AES-256-GCM or "
        f"ChaCha20-Poly1305 (`BOSON_CIPHER`: {ciphers}). A message's `payload` schema below "
        'is the envelope\'s plaintext: `{"v": <schema version>, "items": [<item>, ...]}`. '
        "An item is the message's fields without `kind`. Unknown fields are refused; "
        "numbers must be finite.",
        "**Namespace.** Every exchange and queue name is `<namespace>.<name>` (separator "
        f"`.`). The namespace defaults to `{namespace['default']}`, is "
        f"{namespace['minLength']}-{namespace['maxLength']} characters and matches "
        f"`{namespace['pattern']}` (`BOSON_NAMESPACE`). Below, `{NAMESPACE}` stands for it. "
        f"Exchanges: `{names.work_exchange}` (topic, commands to competing consumers), "
        f"`{names.events_exchange}` (topic, events each consumer binds its own queue to), "
        f"`{names.dead_exchange}` (fanout, into `{names.dead_letter_queue}`). All durable. "
        "Delayed retries: a failed message is published to the delay tier's fanout "
        f"exchange ({', '.join(f'`{names.retry_tier(d)}`' for d in names.retry.delays_ms)}, "
        "each into the queue of the same name) with its queue's name as routing key; it "
        f"expires back through `{names.retry_return_exchange}` (direct, each consumed queue "
        f"bound under its own name; alternate exchange `{names.dead_exchange}`).",
        "**AMQP properties.** Boson publishes every message persistent (`delivery_mode` 2) "
        "with publisher confirms, and a `message_id` property: the item's `message_id` when "
        "the envelope carries one item, otherwise a random id. Readers may rely on the body "
        f"and on the `{HEADER_KIND}` header as a label; for deduplication use the items' "
        "`message_id` fields, not the property. No `content_type`, `reply_to` or "
        "`correlation_id` property is set or read.",
        "**Results.** A task's `reply_to` is the submitting client's id: "
        f"{reply_to['minLength']}-{reply_to['maxLength']} characters matching "
        f"`{reply_to['pattern']}`. Its result is published on `{names.events_exchange}` "
        f"with routing key `{rk_result(CLIENT_ID)}`. The Boson client's queue is "
        f"`{client_queue}`, bound with {client_keys}, declared with arguments "
        f"`{json.dumps(client.arguments())}`. Another client may use any queue of its own "
        f"bound to `{rk_result(CLIENT_ID)}`; if it declares that name, it must use exactly "
        "those arguments (RabbitMQ refuses a re-declaration that differs). Bind the queue "
        "before submitting: a result for a client id with no bound queue is not delivered "
        f"later; it is parked in `{names.dead_letter_queue}` with `{HEADER_REASON}: "
        f"{REASON_UNROUTABLE}` and its own routing key, for an operator to replay.",
        "**Before publishing a task**, a client must: (1) have the exchanges (declare them "
        "as above, or wait for a service to); (2) declare and bind its reply queue; (3) "
        f"publish `task.submitted` to `{names.work_exchange}` with key `task.submit`, "
        "persistent, mandatory, on a channel in confirm mode. The queue "
        f"`{names.submit_queue}` (arguments `{json.dumps(submit.arguments())}`) is declared "
        "by the schedulers and by the Boson client: until it exists a mandatory publish is "
        "returned (NO_ROUTE, reply code 312) and must be retried later, never assumed "
        "delivered. The Boson SDK raises `UnroutableError` then.",
        "**Keys.** `BOSON_KEYS` is `id:base64key[,id:base64key...]`; ids match "
        f"`{KEY_ID_PATTERN.pattern}`; keys are 32 bytes in standard or URL-safe base64, "
        "`=` padding optional.",
    )
    return (
        "\n\n".join(
            textwrap.fill(text, 88, break_on_hyphens=False, break_long_words=False)
            for text in paragraphs
        )
        + "\n"
    )


def asyncapi_document(
    kinds: Mapping[str, type[Message]] = MESSAGE_TYPES,
    names: Names | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the bus, as plain data."""
    names = names if names is not None else Names(NAMESPACE)
    routes = channels(names)
    schemas, items = _schemas(kinds)
    messages = {
        message_id(kind): _message(kind, model, items[kind])
        for kind, model in sorted(kinds.items())
    }
    dead_channel = _dead_letter_channel(names, kinds)
    messages["deadLetter"] = _dead_letter_message(kinds, dead_channel["x-boson-reasons"])
    channel_docs: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    routed: set[str] = set()
    for channel in routes:
        channel_docs[channel.name] = _channel(channel, kinds)
        carried = [kind_of(m) for m in channel.kinds if kind_of(m) in kinds]
        routed.update(carried)
        operations.update(_operations(channel, carried))
    channel_docs["deadLetter"] = dead_channel
    unrouted = sorted(set(kinds) - routed)
    version = max(model.schema_version for model in kinds.values())
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Boson bus",
            "version": f"envelope-1.schemas-{version}",
            "description": _overview(names),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "rabbitmq": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "A RabbitMQ broker (BOSON_BROKER_URL).",
                "variables": {
                    "host": {"default": "127.0.0.1"},
                    "port": {"default": "5672"},
                },
            }
        },
        "channels": channel_docs,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
        "x-boson-namespace": {
            "separator": ".",
            "default": BosonSettings.model_fields["namespace"].default,
            "pattern": BosonSettings.model_json_schema()["properties"]["namespace"]["pattern"],
        },
        "x-boson-unrouted-kinds": unrouted,
    }
    return document


def render_yaml(document: Mapping[str, Any]) -> str:
    """The document as YAML, deterministic (key order kept, no anchors)."""

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _NoAliases.add_representer(str, _text)

    text: str = yaml.dump(
        dict(document),
        Dumper=_NoAliases,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return "# Generated by `boson spec asyncapi`: do not edit by hand.\n" + text


__all__ = ["ASYNCAPI_VERSION", "asyncapi_document", "message_id", "render_yaml"]
