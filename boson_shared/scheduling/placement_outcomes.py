"""What a placement answers: a node, or why not.

Outcomes: ``placed`` on a node (and allocated in the table); ``waiting`` —
some node could hold it in total but no alive node has the room now;
``never`` — larger than every node's total capacity (dead or alive) on some
dimension. :class:`~boson_shared.scheduling.placement.Placer` answers one
demand with a :class:`Placement` and a batch with a :class:`BatchPlacement`,
whose row indices carry ``waiting`` and ``never`` as :data:`WAITING` and
:data:`NEVER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

WAITING = -1
"""``BatchPlacement.indices`` value: fits some node's total, no alive node's free capacity now."""
NEVER = -2
"""``BatchPlacement.indices`` value: larger than every node's total capacity."""

Status = Literal["placed", "waiting", "never"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one demand went: a node (``placed``), or why not."""

    index: int | None
    node_id: str | None
    status: Status
    devices: tuple[int, ...] = ()
    """The node's GPU devices the demand holds (none without a GPU part)."""


@dataclass(frozen=True, slots=True)
class BatchPlacement:
    """Where each demand of a batch went: a row index, ``WAITING`` or ``NEVER``."""

    indices: NDArray[np.int64]
    node_ids: tuple[str | None, ...]
    masks: NDArray[np.int64] | None = None
    """Per demand, the GPU devices it holds as a bit mask (``None``: no demand holds any)."""

    @property
    def placed(self) -> NDArray[np.bool_]:
        """Which demands were placed."""
        return np.asarray(self.indices >= 0)

    def status(self, k: int) -> Status:
        """The status of the ``k``-th demand."""
        i = int(self.indices[k])
        return "placed" if i >= 0 else ("waiting" if i == WAITING else "never")

    def __len__(self) -> int:
        return int(self.indices.shape[0])


__all__ = ["NEVER", "WAITING", "BatchPlacement", "Placement", "Status"]
