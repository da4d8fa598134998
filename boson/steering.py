"""A client's side of steering tasks: cancelling them, following their progress.

Cancelling (:meth:`Client.cancel <boson.client.Client.cancel>`) publishes one
:class:`CancelTask` to every balancer and executor, never through the
database. A service that holds a named task stops it and answers
(:class:`CancelAnswer`): ``cancelled``, or ``finished`` if it had already
finished there. A task nobody holds right now — queued in the broker between
services, or in a retry tier — is dropped as cancelled when it reaches one
(they remember the ids), so nobody answers for it: then the task record says
whether it exists and whether it had finished. Each id's outcome is one of
:data:`CancelOutcome`:

- ``cancelled``: it is stopped, or will never start; its submitter gets a
  ``cancelled`` result (a task cancelled before stays ``cancelled``);
- ``already-finished``: it had succeeded or failed; nothing changed;
- ``unknown``: neither the services nor the task record know the id.

Without a task record (its database down, no monitor), a task this client
did not submit and nobody holds is reported ``unknown``, though the cancel is
remembered and still wins if the task turns up.

:class:`TaskSteering` is the part of :class:`~boson.client.Client` that does
this: :meth:`~TaskSteering.cancel`, :meth:`~TaskSteering.progress` and
:meth:`~TaskSteering.latest_progress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal, TypeAlias

from boson.records import DEFAULT_TIMEOUT_S, RecordReader
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import (
    MAX_CANCEL_IDS,
    TERMINAL_STATES,
    CancelAnswer,
    CancelTask,
    CancelVerdict,
    TaskProgress,
    TaskRecord,
    TaskResult,
)
from boson_shared.contract.topology import RK_CANCEL, Names
from boson_shared.errors import RecordUnavailableError, TaskNotFoundError
from boson_shared.runtime.publisher import BatchingPublisher, Route

CancelOutcome: TypeAlias = Literal["cancelled", "already-finished", "unknown"]
"""What cancelling one task id did (see the module docstring)."""

FIRST_ANSWER_S = 0.25
"""How long a cancel waits for a holder's answer before asking the task record."""
LAST_ANSWER_S = 0.25
"""After the record says the task is not finished: a last wait for a holder's answer."""

_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_UNAVAILABLE = "unavailable"

Lookup = Callable[[str, float], Awaitable[TaskRecord | str | None]]


def valid_ids(task_ids: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The ids that could name a task, and those that cannot (malformed)."""
    good: list[str] = []
    bad: list[str] = []
    for task_id in dict.fromkeys(task_ids):
        (good if isinstance(task_id, str) and _ID.match(task_id) else bad).append(task_id)
    return good, bad


def chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + MAX_CANCEL_IDS] for i in range(0, len(ids), MAX_CANCEL_IDS)]


def from_verdict(verdict: CancelVerdict) -> CancelOutcome:
    return "cancelled" if verdict == "cancelled" else "already-finished"


def from_record(record: TaskRecord) -> CancelOutcome | None:
    """The outcome a finished record gives (None: not finished yet)."""
    if record.state not in TERMINAL_STATES:
        return None
    return "cancelled" if record.state == "cancelled" else "already-finished"


class CancelAnswers:
    """Answers to this client's cancel commands, by command and task id."""

    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, asyncio.Future[CancelVerdict]]] = {}

    def expect(
        self, request_id: str, task_ids: list[str]
    ) -> dict[str, asyncio.Future[CancelVerdict]]:
        loop = asyncio.get_running_loop()
        futures = {task_id: loop.create_future() for task_id in task_ids}
        self._waiting[request_id] = futures
        return futures

    def done_with(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

    def on_answer(self, answer: CancelAnswer) -> None:
        future = self._waiting.get(answer.request_id, {}).get(answer.task_id)
        if future is not None and not future.done():
            future.set_result(answer.verdict)


async def decide(
    task_id: str,
    answer: asyncio.Future[CancelVerdict],
    lookup: Lookup,
    *,
    own: bool,
    timeout: float,
    arrived: Callable[[], CancelOutcome | None] = lambda: None,
) -> CancelOutcome:
    """One id's outcome once the first wait (:data:`FIRST_ANSWER_S`) brought no
    holder's answer: a holder's answer if one comes still, the result if it is this
    client's task and its result arrived (``arrived``), else what the record says.
    ``own``: this client submitted the task (its id exists though the record may lag)."""
    if answer.done():
        return from_verdict(answer.result())
    found = await lookup(task_id, timeout)
    if answer.done():
        return from_verdict(answer.result())
    known = arrived()  # the submitter's own result may have come meanwhile
    if known is not None:
        return known
    if isinstance(found, TaskRecord):
        finished = from_record(found)
        if finished is not None:
            return finished
    with contextlib.suppress(TimeoutError):
        return from_verdict(await asyncio.wait_for(asyncio.shield(answer), LAST_ANSWER_S))
    known = arrived()
    if known is not None:
        return known
    if isinstance(found, TaskRecord) or own:
        # Queued between services: every balancer and executor remembers the id.
        return "cancelled"
    return "unknown"


def record_lookup(reader: RecordReader) -> Lookup:
    async def lookup(task_id: str, timeout: float) -> TaskRecord | str | None:
        try:
            return await reader.get(task_id, timeout=timeout)
        except TaskNotFoundError:
            return None
        except RecordUnavailableError:
            return _UNAVAILABLE

    return lookup


class ProgressFeed:
    """Progress reports of this client's tasks: the latest kept, streams to followers."""

    def __init__(self, ended: Callable[[str], bool]) -> None:
        self.latest: dict[str, TaskProgress] = {}
        self._followers: dict[str, list[asyncio.Queue[TaskProgress | None]]] = {}
        self._ended = ended
        """Whether a task's result has arrived (its late reports are dropped)."""

    def on_progress(self, progress: TaskProgress) -> None:
        if self._ended(progress.task_id):
            return
        kept = self.latest.get(progress.task_id)
        if kept is not None and kept.at > progress.at:
            return  # an older report overtaken on the way
        self.latest[progress.task_id] = progress
        for queue in self._followers.get(progress.task_id, ()):
            queue.put_nowait(progress)

    def close(self) -> None:
        """The client closes: every follower's stream ends."""
        for followers in self._followers.values():
            for queue in followers:
                queue.put_nowait(None)
        self._followers.clear()

    def on_result(self, task_id: str) -> None:
        """The task ended: its followers' streams end."""
        self.latest.pop(task_id, None)
        for queue in self._followers.pop(task_id, ()):
            queue.put_nowait(None)

    async def follow(self, task_id: str) -> AsyncIterator[TaskProgress]:
        """The task's latest report (if any), then each new one until its result arrives."""
        if self._ended(task_id):
            return
        queue: asyncio.Queue[TaskProgress | None] = asyncio.Queue()
        latest = self.latest.get(task_id)
        if latest is not None:
            queue.put_nowait(latest)
        self._followers.setdefault(task_id, []).append(queue)
        try:
            while (item := await queue.get()) is not None:
                # Only the latest matters: skip reports already overtaken.
                while not queue.empty():
                    newer = queue.get_nowait()
                    if newer is None:
                        yield item
                        return
                    item = newer
                yield item
        finally:
            followers = self._followers.get(task_id)
            if followers is not None and queue in followers:
                followers.remove(queue)


class TaskSteering:
    """:meth:`records`, :meth:`cancel`, :meth:`progress` and
    :meth:`latest_progress` of :class:`~boson.client.Client`."""

    names: Names
    client_id: str
    _transport: Transport
    _codec: Codec
    _publisher: BatchingPublisher
    _waiters: dict[str, asyncio.Future[TaskResult]]
    _results: dict[str, TaskResult]
    _answers: CancelAnswers
    _progress: ProgressFeed

    def records(self) -> RecordReader:
        """A reader of the task record (``async with client.records() as r: …``)."""
        return RecordReader(self._transport, self._codec, self.names, self._publisher)

    async def cancel(
        self, *task_ids: str, timeout: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, CancelOutcome]:
        """Cancel tasks by id (any submitter's): per id ``cancelled``,
        ``already-finished`` or ``unknown`` (see :mod:`boson.steering`).

        A queued task never starts; a running one is stopped (a process-mode
        handler killed with what it started; a thread-mode or coroutine handler
        sees ``task.cancelled``; a plain inline function's result is
        discarded). Its submitter receives one ``cancelled`` result. Bounded
        by ``timeout`` per batch of ids.
        """
        good, bad = valid_ids(task_ids)
        outcomes: dict[str, CancelOutcome] = dict.fromkeys(bad, "unknown")
        pending: list[str] = []
        for task_id in good:
            known = self._arrived_outcome(task_id)
            if known is not None:
                outcomes[task_id] = known
            else:
                pending.append(task_id)
        for batch in chunks(pending):
            outcomes.update(await self._cancel_batch(batch, timeout))
        return {task_id: outcomes[task_id] for task_id in dict.fromkeys(task_ids)}

    async def _cancel_batch(self, task_ids: list[str], timeout: float) -> dict[str, CancelOutcome]:
        command = CancelTask(task_ids=tuple(task_ids), reply_to=self.client_id)
        answers = self._answers.expect(command.message_id, task_ids)
        own = {t for t in task_ids if t in self._waiters}
        try:
            route = Route(self.names.events_exchange, RK_CANCEL)
            await self._publisher.publish(route, command)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(asyncio.shield(f) for f in answers.values())),
                    min(timeout, FIRST_ANSWER_S),
                )
            if all(f.done() for f in answers.values()):
                return {t: from_verdict(f.result()) for t, f in answers.items()}
            async with self.records() as reader:
                lookup = record_lookup(reader)
                decided = await asyncio.gather(
                    *(
                        decide(
                            t,
                            f,
                            lookup,
                            own=t in own,
                            timeout=timeout,
                            arrived=functools.partial(self._arrived_outcome, t),
                        )
                        for t, f in answers.items()
                    )
                )
            return dict(zip(answers, decided, strict=True))
        finally:
            self._answers.done_with(command.message_id)

    def _arrived_outcome(self, task_id: str) -> CancelOutcome | None:
        result = self._results.get(task_id)
        if result is None:
            return None
        return "cancelled" if result.status == "cancelled" else "already-finished"

    def progress(self, task_id: str) -> AsyncIterator[TaskProgress]:
        """Progress reports of a task this client submitted, until its result arrives."""
        return self._progress.follow(task_id)

    def latest_progress(self, task_id: str) -> TaskProgress | None:
        """The latest progress report of one of this client's running tasks, if any."""
        return self._progress.latest.get(task_id)


__all__ = [
    "FIRST_ANSWER_S",
    "LAST_ANSWER_S",
    "CancelAnswers",
    "CancelOutcome",
    "Lookup",
    "ProgressFeed",
    "TaskSteering",
    "chunks",
    "decide",
    "from_record",
    "from_verdict",
    "record_lookup",
    "valid_ids",
]
