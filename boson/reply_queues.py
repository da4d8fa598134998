"""The client's reply queue and dead-letter watch: results shown once, arrivals, clean-up.

Part of :class:`~boson.client.Client`. Everything sent to the client arrives
on its reply queue: each task id's result is shown once, whatever the broker
redelivers (the ids of results shown are remembered, bounded), and resolves
whoever awaits it (:meth:`~ReplyQueues.result`); retry news, progress, cancel
answers and data replies go to what follows them. A task whose envelope was
dead-lettered gets a failed result from the dead-letter watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from boson.dead_letters import DeadLetterWatch
from boson.steering import CancelAnswers, ProgressFeed
from boson.task_handles import _Sent
from boson_shared.bus.abc import Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import (
    CancelAnswer,
    Message,
    TaskFailure,
    TaskProgress,
    TaskResult,
    TaskRetrying,
    TaskSubmitted,
)
from boson_shared.contract.topology import Names
from boson_shared.errors import DecodeError
from boson_shared.runtime.consumer import ConsumeLoop
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.dedup import SeenIds
from boson_shared.transfer.fetcher import Fetcher
from boson_shared.transfer.replies import DataReplies

# The client's own logger: these lines read as the client's, as before the split.
logger = logging.getLogger("boson.client")


class ReplyQueues:
    """What :class:`~boson.client.Client` does with its own queues and what arrives there."""

    names: Names
    client_id: str
    _transport: Transport
    _codec: Codec
    _sent: dict[str, _Sent]
    _results: dict[str, TaskResult]
    _arrivals: list[asyncio.Queue[TaskResult]]
    _dead_letters: DeadLetterWatch
    _loop: ConsumeLoop[Message] | None
    _waiters: dict[str, asyncio.Future[TaskResult]]
    _message_of: dict[str, str]
    _shown: SeenIds
    _answers: CancelAnswers
    _progress: ProgressFeed
    duplicates_dropped: int
    on_retrying: Callable[[TaskRetrying], None] | None
    replies: DataReplies
    fetcher: Fetcher

    async def result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The result of ``task_id`` (submitted by this client id)."""
        async with asyncio.timeout(timeout):
            if task_id in self._results:
                result = self._results[task_id]
            else:
                future = self._waiters.get(task_id)
                if future is None:
                    future = self._waiters[task_id] = asyncio.get_running_loop().create_future()
                result = await asyncio.shield(future)
            if result.output_ref is None or result.output is not None:
                return result
            # A large output travelled through the transfer service: fetch it
            # so the caller sees it as if it had come inline.
            blob = await self.fetcher.fetch(result.output_ref)
            resolved = result.model_copy(update={"output": _unpack_output(blob)})
            if task_id in self._results:
                self._results[task_id] = resolved
            return resolved

    def pending(self) -> int:
        """Tasks submitted by this client whose results have not arrived."""
        return sum(1 for future in self._waiters.values() if not future.done())

    async def _on_message(self, message: Message) -> Sequence[Emit]:
        if isinstance(message, TaskResult):
            return await self._on_result(message)
        if isinstance(message, TaskRetrying):
            if self.on_retrying is not None and message.task_id not in self._shown:
                self.on_retrying(message)
            return []
        if isinstance(message, TaskProgress):
            self._progress.on_progress(message)
            return []
        if isinstance(message, CancelAnswer):
            self._answers.on_answer(message)
            return []
        return await self.replies.handle(message)

    async def _on_result(self, result: TaskResult) -> Sequence[Emit]:
        if result.task_id in self._shown:
            self.duplicates_dropped += 1
            return []
        self._shown.add(result.task_id)
        self._sent.pop(self._message_of.pop(result.task_id, ""), None)
        self._results[result.task_id] = result
        future = self._waiters.pop(result.task_id, None)
        if future is not None and not future.done():
            future.set_result(result)
        self._progress.on_result(result.task_id)
        for arrivals in self._arrivals:
            arrivals.put_nowait(result)
        return []

    def arrivals(self) -> asyncio.Queue[TaskResult]:
        """Every result this client shows from now on, once each, in arrival order.

        Take them with ``await queue.get()``; :meth:`result` then resolves an
        output that travelled through the transfer service.
        """
        queue: asyncio.Queue[TaskResult] = asyncio.Queue()
        self._arrivals.append(queue)
        return queue

    async def submit_queue_consumers(self) -> int:
        """How many schedulers consume the submit queue right now (0: tasks would wait)."""
        return await self._transport.queue_consumers(self.names.submit_queue)

    async def delete_queues(self) -> None:
        """Delete this client's reply queue and its dead-letter watch.

        For a one-shot client once every result it waited for has arrived;
        results that arrive later are lost with the queue. The reply queue
        stays while another client under the same id consumes it (two are
        connected at once during a key rotation): deleting it would cancel
        that client's consumer and leave every later result unroutable. The
        last one out removes it. (RabbitMQ's ``if-unused`` delete would do
        this in one step, but quorum queues refuse it, closing the
        connection; two clients closing at the same instant may each see
        the other and leave the queue, which the monitor's sweep of
        abandoned reply queues then removes.)
        """
        await self._dead_letters.close()
        if self._loop is not None:
            await self._loop.stop()
        reply_queue = self.names.client_queue(self.client_id)
        if await self._transport.queue_consumers(reply_queue) > 0:
            logger.info("%s is still consumed by another client under this id: kept", reply_queue)
        else:
            await self._transport.delete_queue(reply_queue)
        await self._transport.delete_queue(self._dead_letters.queue)

    async def _on_dead(self, message_id: str, body: bytes, explanation: str) -> None:
        """One of this client's envelopes was dead-lettered: fail the tasks it carried."""
        first = self._sent.get(message_id)
        if first is None:
            return
        sent = [first]
        with contextlib.suppress(DecodeError):  # our own key: normally readable
            for item in self._codec.decode(body):
                if isinstance(item, TaskSubmitted) and item.message_id in self._sent:
                    sent.append(self._sent[item.message_id])
        for task in dict.fromkeys(sent):
            await self._on_result(
                TaskResult(
                    message_id=f"{task.task_id}.result",
                    task_id=task.task_id,
                    handler=task.handler,
                    status="failed",
                    error=TaskFailure(error_type="dead-lettered", message=explanation[:4000]),
                    attempts=1,
                    reply_to=self.client_id,
                    submitted_at=task.submitted_at,
                )
            )

    def take_result(self, task_id: str) -> TaskResult | None:
        """Remove and return a stored result (so long runs keep memory flat)."""
        return self._results.pop(task_id, None)


def _unpack_output(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


__all__ = ["ReplyQueues"]
