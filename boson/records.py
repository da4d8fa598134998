"""Reading the task record through the bus: the broker and the keys suffice.

A :class:`RecordReader` publishes :class:`RecordQuery` messages to the
monitors' record-queries queue and waits for each :class:`RecordReply` on a
reply queue of its own (removed when it closes, or when long unused).
``Client.get`` and ``Client.tasks`` use one per call; open one with
``client.records()`` to ask many questions over one reply queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from boson_shared.bus.abc import Delivery, Subscription, Transport
from boson_shared.contract.codec import Codec
from boson_shared.contract.messages import (
    RecordQuery,
    RecordReply,
    TaskRecord,
    TaskState,
    new_id,
)
from boson_shared.contract.tenants_report import TenantSample
from boson_shared.contract.topology import (
    RK_RECORD_QUERY,
    BindingSpec,
    Names,
    QueueSpec,
    Topology,
    rk_record_reply,
)
from boson_shared.errors import (
    DecodeError,
    InvalidQueryError,
    RecordError,
    RecordUnavailableError,
)
from boson_shared.record.replies import first_problem, raise_for
from boson_shared.runtime.publisher import BatchingPublisher, Route

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TaskPage:
    """One page of :meth:`RecordReader.tasks`; pass ``next_cursor`` for the next."""

    records: tuple[TaskRecord, ...]
    next_cursor: str | None


class RecordReader:
    """Asks the monitors' task record (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        codec: Codec,
        names: Names,
        publisher: BatchingPublisher,
        reader_id: str | None = None,
    ) -> None:
        self._transport = transport
        self._codec = codec
        self._names = names
        self._publisher = publisher
        self.reader_id = reader_id or f"records-{new_id()[:12]}"
        self.queue = names.subscriber_queue("records", self.reader_id)
        self._waiting: dict[str, asyncio.Future[RecordReply]] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        if not self._transport.is_connected:
            await self._transport.connect()
        # Declaring the queries queue too: a question asked before any
        # monitor ran waits there for one, within the caller's timeout.
        await self._transport.declare(
            self._names.record_queries()
            + Topology(
                queues=(
                    QueueSpec(self.queue, queue_type="classic", durable=False, exclusive=True),
                ),
                bindings=(
                    BindingSpec(
                        self.queue, self._names.events_exchange, rk_record_reply(self.reader_id)
                    ),
                ),
            )
        )
        self._subscription = await self._transport.consume(
            self.queue, self._on_delivery, prefetch=256
        )

    async def close(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(Exception):
                await subscription.cancel()
            with contextlib.suppress(Exception):
                await self._transport.delete_queue(self.queue)
        for future in self._waiting.values():
            future.cancel()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _on_delivery(self, delivery: Delivery) -> None:
        try:
            messages = self._codec.decode(delivery.body)
        except DecodeError as error:
            logger.warning("undecodable record reply dropped: %s", error)
            messages = []
        await delivery.ack()
        for message in messages:
            if isinstance(message, RecordReply):
                future = self._waiting.pop(message.query_id, None)
                if future is not None and not future.done():
                    future.set_result(message)

    async def ask(self, query: RecordQuery, timeout: float = DEFAULT_TIMEOUT_S) -> RecordReply:
        """Publish ``query``; its reply, or :class:`RecordUnavailableError` if none in time."""
        future: asyncio.Future[RecordReply] = asyncio.get_running_loop().create_future()
        self._waiting[query.message_id] = future
        try:
            async with asyncio.timeout(timeout):
                route = Route(self._names.work_exchange, RK_RECORD_QUERY)
                await self._publisher.publish(route, query)
                return await future
        except TimeoutError as e:
            raise RecordUnavailableError(
                f"no answer from the task record within {timeout:g}s (is a monitor running?)"
            ) from e
        finally:
            self._waiting.pop(query.message_id, None)

    async def get(self, task_id: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> TaskRecord:
        """The record of ``task_id`` with its timeline and result."""
        reply = await self.ask(self._query(task_id=task_id), timeout)
        raise_for(reply)
        if len(reply.records) != 1:
            raise RecordError(f"the record answered {len(reply.records)} tasks for one id")
        return reply.records[0]

    async def tasks(
        self,
        *,
        state: TaskState | None = None,
        handler: str | None = None,
        node_id: str | None = None,
        tenant: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> TaskPage:
        """A page of records, newest submission first (outputs left out: use ``get``).

        ``tenant``: that tenant's tasks only (``default`` includes tasks
        recorded before tasks had a tenant)."""
        query = self._query(
            state=state,
            handler=handler,
            node_id=node_id,
            tenant=tenant,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        reply = await self.ask(query, timeout)
        raise_for(reply)
        return TaskPage(reply.records, reply.next_cursor)

    async def tenant_history(
        self,
        *,
        tenant: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> tuple[TenantSample, ...]:
        """The tenants' samples in the record, newest first (one per tenant per
        sampling slot; ``tenant``: that tenant's only)."""
        query = self._query(subject="tenants", tenant=tenant, since=since, until=until, limit=limit)
        reply = await self.ask(query, timeout)
        raise_for(reply)
        return reply.tenant_samples

    def _query(self, **fields: object) -> RecordQuery:
        try:
            return RecordQuery(reply_to=self.reader_id, **fields)  # type: ignore[arg-type]
        except ValueError as e:
            raise InvalidQueryError(f"malformed record query: {first_problem(e)}") from e


__all__ = ["DEFAULT_TIMEOUT_S", "RecordReader", "TaskPage"]
