"""The monitor's task record: ingest lifecycle events, answer queries, expire.

Every monitor consumes the one durable record queue (competing consumers):
the events of a delivery go through a :class:`GroupCommit` into the store,
and the delivery is acknowledged only once that transaction commits. When
the database stops answering, the record consumer pauses — its deliveries go
back to the queue and wait there — while the rest of the monitor (heartbeats,
snapshots, alerts) carries on; the maintenance loop resumes it once the
database answers again. Queries arrive on their own queue and are answered
on the asker's reply route; retention runs from the same maintenance loop.

The events a transaction was the first to store go, once committed, to
``on_recorded``: the monitor's task metrics and placement explanations come
from there rather than from a second copy of every placement and result.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from boson_shared.contract.messages import (
    BlobsReferenced,
    Message,
    RecordQuery,
    RecordReply,
    TaskEvent,
    TaskProgress,
    TaskResult,
)
from boson_shared.contract.topology import RK_BLOBS_REFERENCED, Names, rk_record_reply
from boson_shared.errors import (
    InvalidQueryError,
    RecordUnavailableError,
    TaskNotFoundError,
)
from boson_shared.record.group_commit import GroupCommit
from boson_shared.record.merge import RecordEvent
from boson_shared.record.store import RecordStore, TaskQuery
from boson_shared.record.tenant_samples import SampleQuery, read_samples
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route

logger = logging.getLogger(__name__)

Pause = Callable[[], Awaitable[None]]
Recorded = Callable[[Sequence[RecordEvent]], None]


class RecordKeeper:
    """One monitor's side of the task record (see the module docstring)."""

    def __init__(
        self,
        store: RecordStore,
        names: Names,
        *,
        batch_max_items: int,
        batch_linger_s: float = 0.0,
        referenced_max: int,
        clock: Callable[[], float],
        on_recorded: Recorded | None = None,
    ) -> None:
        self.store = store
        self.names = names
        self.referenced_max = referenced_max
        self.clock = clock
        self.on_recorded = on_recorded
        """Told the events each committed transaction stored first."""
        self.commits: GroupCommit[RecordEvent] = GroupCommit(
            self._ingest, max_items=batch_max_items, linger_s=batch_linger_s
        )
        self.ready = False
        """Migrated and answering: the record consumer may run."""
        self.outage = False
        """A write failed: the consumer should pause until the database answers."""
        self.on_outage: Pause | None = None
        self.ingested = 0
        self.expired = 0

    async def prepare(self) -> bool:
        """Migrate (or, after an outage, check the database answers); whether it does."""
        try:
            await self.store.migrate()
        except RecordUnavailableError as error:
            logger.warning("task record unavailable: %s", error)
            return False
        self.ready = True
        self.outage = False
        return True

    async def _ingest(self, batch: list[RecordEvent]) -> None:
        fresh = await self.store.ingest_new(batch)
        if fresh and self.on_recorded is not None:
            self.on_recorded(fresh)

    async def on_event(self, message: Message) -> Sequence[Emit]:
        return await self.on_events([message])

    async def on_events(self, messages: Sequence[Message]) -> Sequence[Emit]:
        batch = [m for m in messages if isinstance(m, TaskEvent | TaskResult)]
        reports = [m for m in messages if isinstance(m, TaskProgress)]
        try:
            if reports:
                await self.store.record_progress(reports)
            if batch:
                await self.commits.write(batch)
        except RecordUnavailableError:
            if not self.outage:
                self.outage = True
                logger.warning("task record write failed: pausing its consumer")
                if self.on_outage is not None:
                    await self.on_outage()
            raise
        self.ingested += len(batch)
        return []

    async def on_query(self, query: Message) -> Sequence[Emit]:
        assert isinstance(query, RecordQuery)
        reply = await self.answer(query)
        return [Emit(Route(self.names.events_exchange, rk_record_reply(query.reply_to)), reply)]

    async def answer(self, query: RecordQuery) -> RecordReply:
        """The reply to ``query``: records, or a typed reason why not."""
        return await answer(self.store, query)

    async def sweep(self) -> list[Emit]:
        """Expire old records; announce the blobs the rest still refer to."""
        try:
            self.expired += await self.store.expire()
            digests, complete = await self.store.referenced_digests(self.referenced_max)
        except RecordUnavailableError as error:
            logger.warning("task record retention skipped: %s", error)
            return []
        referenced = BlobsReferenced(
            as_of=self.clock(), digests=tuple(sorted(digests)), complete=complete
        )
        return [Emit(Route(self.names.events_exchange, RK_BLOBS_REFERENCED), referenced)]


async def answer(store: RecordStore, query: RecordQuery) -> RecordReply:
    """The record's answer to ``query`` from ``store``: records, or a typed reason why not.

    The one code path of every read of the record: queries over the bus
    (``boson task``, ``boson tasks``, ``boson tenants --history``, ``Client.get``)
    and the dashboard's ``/api/tasks`` both come here, so the CLI and the page never disagree.
    """
    try:
        if query.subject == "tenants":
            samples = await read_samples(
                store,
                SampleQuery(
                    tenant=query.tenant, since=query.since, until=query.until, limit=query.limit
                ),
            )
            return RecordReply(query_id=query.message_id, tenant_samples=samples)
        if query.task_id is not None:
            record = await store.get(query.task_id)
            return RecordReply(query_id=query.message_id, records=(record,))
        page = await store.list(
            TaskQuery(
                state=query.state,
                handler=query.handler,
                node_id=query.node_id,
                tenant=query.tenant,
                since=query.since,
                until=query.until,
                limit=query.limit,
                cursor=query.cursor,
            ),
            # A page lists tasks; outputs and logs come one task at a time (they may be large).
            outputs=False,
        )
    except TaskNotFoundError as error:
        return RecordReply(query_id=query.message_id, error="not-found", detail=str(error))
    except InvalidQueryError as error:
        return RecordReply(query_id=query.message_id, error="bad-query", detail=str(error))
    except RecordUnavailableError as error:
        return RecordReply(query_id=query.message_id, error="unavailable", detail=str(error))
    return RecordReply(
        query_id=query.message_id, records=page.records, next_cursor=page.next_cursor
    )


__all__ = ["RecordKeeper", "answer"]
