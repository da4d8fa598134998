"""The foundations of every wire model: base classes, id and number types.

Kept apart from :mod:`boson_shared.contract.messages` so that the message
kinds can live in modules by subject (:mod:`boson_shared.contract.tasks`,
:mod:`boson_shared.contract.tenants_report`, ...) and still be registered
there without an import cycle.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, ClassVar, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1
"""Schema version of every model in this module (bumped on breaking change)."""

Identifier: TypeAlias = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")
]
"""Ids of tasks, nodes, clients and messages: non-empty, printable, routable."""

HandlerName: TypeAlias = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
]
Digest: TypeAlias = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""Lower-case hex SHA-256."""

NonNegative: TypeAlias = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
Fraction: TypeAlias = Annotated[
    float, Field(ge=0, le=1, allow_inf_nan=False, description="A share of the whole, 0 to 1.")
]
Timestamp: TypeAlias = Annotated[
    float, Field(ge=0, allow_inf_nan=False, description="Seconds since the Unix epoch (UTC).")
]
Count: TypeAlias = Annotated[int, Field(ge=0, le=2**53)]

PRIORITY_MIN = -1000
PRIORITY_MAX = 1000
Priority: TypeAlias = Annotated[
    int,
    Field(
        ge=PRIORITY_MIN,
        le=PRIORITY_MAX,
        description="Within its tenant, higher goes first (-1000 to 1000).",
    ),
]
TenantName: TypeAlias = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
"""A tenant: a team or account sharing the pool (``BOSON_TENANTS_FILE``)."""
DEFAULT_TENANT = "default"
"""The tenant of a task that names none."""


def new_id() -> str:
    """A fresh random id (32 hex characters)."""
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


class Model(BaseModel):
    """Base of every wire model: frozen, no unknown fields, finite numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Message(Model):
    """A top-level message: it has a ``kind`` and a ``message_id``.

    The message id makes processing idempotent: a consumer that has handled an
    id acknowledges and drops a repeat (docs/design.md#delivery).
    """

    kind: str
    message_id: Identifier = Field(default_factory=new_id)
    schema_version: ClassVar[int] = SCHEMA_VERSION
    also_reads: ClassVar[frozenset[int]] = frozenset()
    """Older schema versions whose items this model still validates as they
    are (its newer fields optional): readers upgrade before writers."""


__all__ = [
    "DEFAULT_TENANT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "SCHEMA_VERSION",
    "Count",
    "Digest",
    "Fraction",
    "HandlerName",
    "Identifier",
    "Message",
    "Model",
    "NonNegative",
    "Priority",
    "TenantName",
    "Timestamp",
    "new_id",
    "now",
]
