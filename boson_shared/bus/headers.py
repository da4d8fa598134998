"""Header values both transports carry the same way.

AMQP field tables know more types than :data:`~boson_shared.bus.abc.HeaderValue`
(decimals, timestamps, arrays, nested tables) and one the client library
cannot send as-is (``bytes`` must travel as a byte array). Both transports
pass headers through :func:`outgoing` before publishing, so a header that
RabbitMQ would refuse is refused by the in-memory broker too, and the AMQP
transport maps what it receives through :func:`incoming`.

Floats travel as IEEE single precision: the AMQP client encodes Python
floats in field tables as 32-bit ``f`` values, and there is no way to ask it
for a double. :func:`outgoing` applies the same rounding, so the in-memory
broker never shows a precision that RabbitMQ would lose. Put exact values in
strings.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import struct
from collections.abc import Mapping
from typing import Any

from boson_shared.bus.abc import HeaderValue

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MAX_KEY_BYTES = 128
_FLOAT32 = struct.Struct("!f")


def _as_float32(value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        return value
    try:
        packed = _FLOAT32.pack(value)
    except OverflowError as e:
        raise ValueError(f"header float {value!r} is out of single-precision range") from e
    result: float = _FLOAT32.unpack(packed)[0]
    return result


def outgoing(headers: Mapping[str, HeaderValue] | None) -> dict[str, HeaderValue]:
    """Validate headers for publishing; floats rounded to what AMQP carries.

    Raises :class:`TypeError` for a value that is not a header type and
    :class:`ValueError` for one that AMQP cannot encode (an integer outside
    64 bits, a key longer than 128 bytes).
    """
    if not headers:
        return {}
    result: dict[str, HeaderValue] = {}
    for key, value in headers.items():
        if not isinstance(key, str):
            raise TypeError(f"header key {key!r} is not a str")
        if len(key.encode()) > _MAX_KEY_BYTES:
            raise ValueError(f"header key {key[:32]!r}… is longer than 128 bytes")
        if value is None or isinstance(value, bool | str | bytes):
            result[key] = value
        elif isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ValueError(f"header {key!r} does not fit in 64 bits")
            result[key] = value
        elif isinstance(value, float):
            result[key] = _as_float32(value)
        else:
            raise TypeError(f"header {key!r} has unsupported type {type(value).__name__}")
    return result


def to_amqp(headers: Mapping[str, HeaderValue]) -> dict[str, Any]:
    """The field table for already validated headers (``bytes`` → byte array)."""
    return {
        key: bytearray(value) if isinstance(value, bytes) else value
        for key, value in headers.items()
    }


def incoming(table: Mapping[str, Any] | None) -> dict[str, HeaderValue]:
    """Received AMQP headers as header values.

    Byte arrays become ``bytes``, decimals ``float``, timestamps integer epoch
    seconds. Arrays and nested tables are dropped: only the broker adds them
    (``x-death``), and the in-memory broker has no equivalent. The scalar
    ``x-first-death-*`` headers stay.
    """
    if not table:
        return {}
    result: dict[str, HeaderValue] = {}
    for key, value in table.items():
        if value is None or isinstance(value, bool | int | float | str | bytes):
            result[key] = value
        elif isinstance(value, bytearray | memoryview):
            result[key] = bytes(value)
        elif isinstance(value, decimal.Decimal):
            result[key] = float(value)
        elif isinstance(value, dt.datetime):
            result[key] = int(value.timestamp())
    return result


__all__ = ["incoming", "outgoing", "to_amqp"]
