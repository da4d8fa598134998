"""The dead-letter channel and message of the AsyncAPI document.

Where messages no consumer could process go, and the headers that say why: the
reasons are every :class:`~boson_shared.errors.DecodeError`'s token and the
runtime's own (unexpected kind, permanent error, retries exhausted, unroutable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boson.asyncapi.messages import AMQP_BINDING_VERSION, CONTENT_TYPE
from boson_shared.contract.messages import Message
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
)
from boson_shared.errors import DecodeError

# The transfer service's refusals are DecodeErrors too: imported so that the
# reasons listed never depend on what else this process happened to import.
from boson_shared.transfer import errors as _transfer_errors  # noqa: F401


def _decode_reasons() -> list[str]:
    reasons: list[str] = []
    pending: list[type[DecodeError]] = [DecodeError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not DecodeError and cls.reason not in reasons:
            reasons.append(cls.reason)
    return sorted(reasons)


def dead_letter_channel(names: Names, kinds: Mapping[str, type[Message]]) -> dict[str, Any]:
    """The ``deadLetter`` channel; its ``x-boson-reasons`` are every reason a header may give."""
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


def dead_letter_message(kinds: Mapping[str, type[Message]], reasons: list[str]) -> dict[str, Any]:
    """The ``deadLetter`` message: any envelope, with the headers that say why it was given up."""
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


__all__ = ["dead_letter_channel", "dead_letter_message"]
