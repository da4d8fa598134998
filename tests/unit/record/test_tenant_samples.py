"""The record keeps how the tenants shared the pool over time: one sample per
tenant per slot, written once whatever the number of monitors, expired with
the record, read over the bus and by ``boson tenants --history``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect

from boson.cli import main
from boson_services.monitor.record import answer
from boson_services.monitor.tenant_history import TenantHistory
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import RecordQuery, RecordReply
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage
from boson_shared.errors import InvalidQueryError
from boson_shared.record.schema import tenant_samples
from boson_shared.record.store import RecordStore
from boson_shared.record.tenant_samples import SampleQuery, read_samples, record_report

SLOT_S = 30.0
T0 = 1_800_000_000.0  # a slot boundary (a multiple of SLOT_S)


def report(at: float, seq: int, *, used_a: float = 2.0, balancer: str = "bal-1") -> TenantsReport:
    return TenantsReport(
        balancer_id=balancer,
        seq=seq,
        reported_at=at,
        pool={"cpu": 8.0, "memory": 32.0},
        grace_s=30.0,
        tenants=(
            TenantUsage(
                name="a",
                weight=2.0,
                may_preempt=True,
                quota={"cpu": 4.0},
                guarantee={"cpu": 4.0},
                usage={"cpu": used_a, "memory": 1.5},
                pending={"cpu": 1.0},
                dominant_share=used_a / 8,
                waiting=1,
                running=2,
            ),
            TenantUsage(
                name="b",
                weight=1.0,
                may_preempt=False,
                quota={"cpu": 4.0},
                guarantee={"cpu": 4.0},
                borrowing_limit={"cpu": 2.0},
                usage={"cpu": 5.0},
                borrowed={"cpu": 1.0},
                dominant_share=5 / 8,
                running=5,
                preempted=3,
            ),
        ),
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RecordStore]:
    store = RecordStore.open(database_url, ttl_s=3600.0, clock=lambda: T0)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def test_one_sample_per_tenant_per_slot(store: RecordStore) -> None:
    assert await record_report(store, report(T0 + 1, 1), slot_s=SLOT_S) == 2
    # A later report of the same slot, and the same report again: nothing new.
    assert await record_report(store, report(T0 + 3, 2, used_a=3.0), slot_s=SLOT_S) == 0
    assert await record_report(store, report(T0 + 1, 1), slot_s=SLOT_S) == 0
    assert await record_report(store, report(T0 + SLOT_S + 1, 16, used_a=4.0), slot_s=SLOT_S) == 2
    samples = await read_samples(store, SampleQuery())
    assert [(s.name, s.seq, s.usage["cpu"]) for s in samples] == [
        ("a", 16, 4.0),
        ("b", 16, 5.0),
        ("a", 1, 2.0),
        ("b", 1, 5.0),
    ]
    b = samples[1]
    assert b.borrowed == {"cpu": 1.0}
    assert b.borrowing_limit == {"cpu": 2.0}
    assert (b.running, b.waiting, b.preempted, b.may_preempt) == (5, 0, 3, False)
    assert b.pool == {"cpu": 8.0, "memory": 32.0}
    assert b.balancer_id == "bal-1"
    assert samples[2].pending == {"cpu": 1.0}
    assert samples[2].at == T0 + 1


async def test_the_migrated_table_is_the_declared_one(store: RecordStore) -> None:
    def shape(sync: Connection) -> tuple[set[str], dict[str | None, list[str | None]], list[str]]:
        found = inspect(sync)
        columns = {c["name"] for c in found.get_columns(tenant_samples.name)}
        indexes = {i["name"]: i["column_names"] for i in found.get_indexes(tenant_samples.name)}
        key = found.get_pk_constraint(tenant_samples.name)["constrained_columns"]
        return columns, indexes, key

    async with store.engine.connect() as conn:
        columns, indexes, key = await conn.run_sync(shape)
    assert columns == {c.name for c in tenant_samples.columns}
    declared = {i.name: [c.name for c in i.columns] for i in tenant_samples.indexes}
    assert indexes == declared
    assert key == ["slot_at", "tenant"]


async def test_competing_monitors_store_each_sample_once(database_url: str) -> None:
    stores = [RecordStore.open(database_url, ttl_s=3600.0) for _ in range(2)]
    try:
        for s in stores:
            await s.migrate()
        # Each monitor writes the first report it took in the slot: they differ.
        first = await record_report(stores[0], report(T0 + 2, 1), slot_s=SLOT_S)
        second = await record_report(stores[1], report(T0 + 4, 2), slot_s=SLOT_S)
        assert first + second == 2
        assert len(await read_samples(stores[1], SampleQuery())) == 2
        # A balancer that took over reports in the same slot: still one sample.
        late = report(T0 + 9, 1, balancer="bal-2")
        assert await record_report(stores[1], late, slot_s=SLOT_S) == 0
    finally:
        for s in stores:
            await s.close()


async def test_filters_and_limit(store: RecordStore) -> None:
    for k in range(4):
        await record_report(store, report(T0 + k * SLOT_S, k + 1), slot_s=SLOT_S)
    only_b = await read_samples(store, SampleQuery(tenant="b"))
    assert [s.seq for s in only_b] == [4, 3, 2, 1]
    window = await read_samples(store, SampleQuery(since=T0 + SLOT_S, until=T0 + 3 * SLOT_S))
    assert sorted({s.seq for s in window}) == [2, 3]
    assert [(s.seq, s.name) for s in await read_samples(store, SampleQuery(limit=3))] == [
        (4, "a"),
        (4, "b"),
        (3, "a"),
    ]
    assert await read_samples(store, SampleQuery(tenant="nobody")) == ()


async def test_samples_expire_with_the_record(database_url: str) -> None:
    now = [T0]
    store = RecordStore.open(database_url, ttl_s=100.0, clock=lambda: now[0])
    try:
        await store.migrate()
        await record_report(store, report(T0, 1), slot_s=SLOT_S)
        await record_report(store, report(T0 + 90, 2), slot_s=SLOT_S)
        now[0] = T0 + 150  # the first sample is past its 100 s, the second not
        await store.expire()
        assert [s.seq for s in await read_samples(store, SampleQuery())] == [2, 2]
    finally:
        await store.close()


async def test_a_monitor_writes_once_per_slot_whatever_the_report_rate(
    store: RecordStore,
) -> None:
    history = TenantHistory(store, slot_s=SLOT_S)
    for k in range(30):  # a report every 2 s for a minute: two slots
        await history.observe(report(T0 + 2 * k, k + 1))
    assert history.written == 4
    assert [s.seq for s in await read_samples(store, SampleQuery())] == [16, 16, 1, 1]


async def test_the_record_answers_a_tenants_query(store: RecordStore) -> None:
    await record_report(store, report(T0, 1), slot_s=SLOT_S)
    reply = await answer(store, RecordQuery(reply_to="r", subject="tenants", tenant="a"))
    assert reply.error is None
    assert reply.records == ()
    assert [(s.name, s.usage) for s in reply.tenant_samples] == [("a", {"cpu": 2.0, "memory": 1.5})]
    codec = EnvelopeCodec(Keyring.ephemeral())
    assert codec.decode(codec.encode([reply])) == [reply]
    bad = await answer(store, RecordQuery(reply_to="r", subject="tenants", since=T0, until=T0 - 1))
    assert bad.error == "bad-query"


def test_a_version_3_query_and_reply_still_read() -> None:
    query = RecordQuery(reply_to="r", state="failed")
    payload = query.model_dump(mode="python", exclude={"kind", "subject"}, exclude_none=True)
    assert RecordQuery.model_validate(payload).subject == "tasks"
    assert 3 in RecordQuery.also_reads
    assert 3 in RecordReply.also_reads
    reply = RecordReply(query_id="q")
    payload = reply.model_dump(mode="python", exclude={"kind", "tenant_samples"})
    assert RecordReply.model_validate(payload).tenant_samples == ()


def test_a_sample_query_refuses_nonsense() -> None:
    with pytest.raises(InvalidQueryError, match="limit"):
        SampleQuery(limit=0)
    with pytest.raises(InvalidQueryError, match="since is after until"):
        SampleQuery(since=2.0, until=1.0)


# -- boson tenants --history, reading the local SQLite record ---------------------------


@pytest.fixture
def local_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("BOSON_BROKER_URL", raising=False)
    path = tmp_path / "records.sqlite3"
    monkeypatch.setenv("BOSON_DATABASE_URL", f"sqlite:///{path}")
    return path


def test_the_cli_shows_the_history_of_the_local_record(
    local_record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    async def fill() -> None:
        store = RecordStore.open(f"sqlite:///{local_record}", ttl_s=3600.0)
        await store.migrate()
        await record_report(store, report(T0, 1), slot_s=SLOT_S)
        await record_report(store, report(T0 + SLOT_S, 2, used_a=3.0), slot_s=SLOT_S)
        await store.close()

    asyncio.run(fill())
    assert main(["tenants", "--history", "--tenant", "a", "--since", str(T0 + 1), "--json"]) == 0
    samples = json.loads(capsys.readouterr().out)["samples"]
    assert [(s["name"], s["seq"], s["usage"]["cpu"]) for s in samples] == [("a", 2, 3.0)]
    assert main(["tenants", "--history"]) == 0
    table = capsys.readouterr().out
    assert "Tenants over time (4 samples" in table
    assert "3/4" in table
    assert "5/4 +1" in table


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["tenants", "--history", "--since", "yesterday-ish"], "--since 'yesterday-ish'"),
        (["tenants", "--history", "--limit", "0"], "limit must be 1..1000"),
        (["tenants", "--since", "1h"], "--since only with --history"),
    ],
)
def test_bad_history_input_is_one_line_and_exit_2(
    local_record: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith("boson: InvalidQueryError:"), err
    assert says in err, err
