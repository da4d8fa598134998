"""The channels and operations of the AsyncAPI document, one each per route.

A channel is one :class:`~boson_shared.contract.channel_types.Channel`: its exchange and
routing key as AMQP bindings, the kinds it carries, who publishes and who consumes
(queue, binding key, queue arguments); its operations are the publishers' ``send``
and, where anyone consumes it, the consumers' ``receive``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from boson.asyncapi.messages import AMQP_BINDING_VERSION, message_id
from boson_shared.contract.channel_types import Channel
from boson_shared.contract.messages import Message, kind_of
from boson_shared.contract.topology import HEADER_REASON, REASON_UNROUTABLE

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

_PARAMETERS: Mapping[str, str] = {
    "node_id": "The executor's node id (an Identifier).",
    "client_id": "The client id a task names in reply_to (an Identifier).",
    "instance_id": "A service replica's instance id ([A-Za-z0-9_-]{1,64}).",
    "reason": "The alert's reason (see the alert message's reason enum).",
}


def channel_doc(channel: Channel, kinds: Mapping[str, type[Message]]) -> dict[str, Any]:
    """The channel of one route, carrying those of its kinds that ``kinds`` holds."""
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


def channel_operations(channel: Channel, carried: Sequence[str]) -> dict[str, Any]:
    """The ``send`` operation of a route and, if anyone consumes it, its ``receive``."""
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


__all__ = ["channel_doc", "channel_operations"]
