"""A cancelled caller of aiormq stays cancelled, whatever error aiormq hands back.

aiormq runs each channel call in a task of its own and, when the channel
closes while that call is being cancelled (a passive look-up of a missing
queue closes it: the broker's close and the cancel cross), gives the caller
the channel's error in place of the :class:`asyncio.CancelledError`. The
caller's cancel request is spent by then: a loop that takes that error for
a broker failure and carries on never ends, and a service waiting for it
never stops. :func:`cancel_wins` turns such an error back into the cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def cancel_wins() -> Iterator[None]:
    """Raise :class:`asyncio.CancelledError` (from the error) when the body fails
    while this task is being cancelled.

    Put it around an ``asyncio.timeout`` block, not inside: the timeout takes
    back a cancel of its own on the way out, so only a cancel from outside is
    restored (a lost one of the timeout's leaves the error as it was).
    """
    try:
        yield
    except Exception as error:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError from error
        raise


__all__ = ["cancel_wins"]
