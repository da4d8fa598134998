"""The batching publisher against a transport whose confirms the test controls."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import Alert, BalancerBacklog, Message
from boson_shared.contract.topology import HEADER_KIND
from boson_shared.runtime.publisher import BatchingPublisher, Route
from tests.support.gated_transport import GatedTransport

ROUTE = Route("ns.events", "alert.x")
OTHER = Route("ns.events", "alert.y")


codec = EnvelopeCodec(Keyring.ephemeral())


def alert(number: int, detail: str = "") -> Alert:
    return Alert(
        message_id=f"m{number}", reason="backlog", severity="info", detail=detail or str(number)
    )


def decoded(transport: GatedTransport) -> list[list[Message]]:
    return [codec.decode(sent.body) for sent in transport.sent]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def confirm_until_done(transport: GatedTransport, task: asyncio.Future[None]) -> None:
    async with asyncio.timeout(5):
        while not task.done():
            transport.confirm_all()
            await asyncio.sleep(0)
    await task


async def test_alone_one_item_goes_out_at_once_in_its_own_envelope() -> None:
    transport = GatedTransport()
    publisher = BatchingPublisher(transport, codec)
    task = asyncio.ensure_future(publisher.publish(ROUTE, alert(1)))
    await settle()

    assert len(transport.sent) == 1  # sent before any confirm: no batching timer
    assert not task.done()  # publish returns only once confirmed
    sent = transport.sent[0]
    assert (sent.exchange, sent.routing_key) == (ROUTE.exchange, ROUTE.routing_key)
    assert sent.headers == {HEADER_KIND: "alert"}
    assert sent.message_id == "m1"
    transport.confirm_all()
    await task
    assert [m.message_id for m in decoded(transport)[0]] == ["m1"]
    assert (publisher.stats.items, publisher.stats.envelopes) == (1, 1)


async def test_a_burst_packs_behind_the_confirms() -> None:
    transport = GatedTransport()
    publisher = BatchingPublisher(transport, codec, max_items=100, max_in_flight=2)
    burst = [(ROUTE, alert(n)) for n in range(1000)]
    task = asyncio.ensure_future(publisher.publish_many(burst))
    await settle()
    assert len(transport.sent) == 2  # the lane's in-flight window, one item each
    await confirm_until_done(transport, task)

    envelopes = decoded(transport)
    sizes = [len(envelope) for envelope in envelopes]
    assert sizes == [1, 1, *[100] * 9, 98]
    assert [m.message_id for env in envelopes for m in env] == [f"m{n}" for n in range(1000)]
    assert (publisher.stats.items, publisher.stats.envelopes) == (1000, 12)
    # An envelope is named by its first item's id, in plaintext (dead letters are traced by it).
    assert [sent.message_id for sent in transport.sent] == [env[0].message_id for env in envelopes]


async def test_lanes_are_per_route_and_kind() -> None:
    transport = GatedTransport(auto_confirm=True)
    publisher = BatchingPublisher(transport, codec)
    backlog = BalancerBacklog(pending=1, held=2)
    await publisher.publish_many(
        [(ROUTE, alert(1)), (OTHER, alert(2)), (ROUTE, backlog), (ROUTE, alert(3))]
    )
    by_lane: dict[tuple[str, str], list[str]] = {}
    for sent, envelope in zip(transport.sent, decoded(transport), strict=True):
        assert all(m.kind == sent.headers[HEADER_KIND] for m in envelope)
        by_lane.setdefault((sent.routing_key, str(sent.headers[HEADER_KIND])), []).extend(
            m.message_id for m in envelope
        )
    assert by_lane == {
        ("alert.x", "alert"): ["m1", "m3"],
        ("alert.y", "alert"): ["m2"],
        ("alert.x", "balancer.backlog"): [backlog.message_id],
    }


async def test_an_envelope_over_max_bytes_is_split_until_each_fits() -> None:
    transport = GatedTransport()
    publisher = BatchingPublisher(transport, codec, max_items=100, max_bytes=4000, max_in_flight=1)
    first = asyncio.ensure_future(publisher.publish(ROUTE, alert(0)))
    await settle()
    # Eight incompressible ~1 kB details queue behind the first envelope.
    rest = [(ROUTE, alert(n, detail=secrets.token_urlsafe(1000))) for n in range(1, 9)]
    task = asyncio.ensure_future(publisher.publish_many(rest))
    await settle()
    transport.confirm_all()
    await first
    await confirm_until_done(transport, task)

    assert all(len(sent.body) <= 4000 for sent in transport.sent)
    ids = [m.message_id for envelope in decoded(transport) for m in envelope]
    assert sorted(ids) == sorted(f"m{n}" for n in range(9))
    assert len(transport.sent) >= 1 + 8 * 1000 // 4000
    assert max(len(envelope) for envelope in decoded(transport)) > 1  # split, not unbatched


async def test_one_item_larger_than_max_bytes_still_goes_alone() -> None:
    transport = GatedTransport(auto_confirm=True)
    publisher = BatchingPublisher(transport, codec, max_bytes=1024)
    big = alert(1, detail=secrets.token_urlsafe(2000))
    await publisher.publish(ROUTE, big)
    assert len(transport.sent) == 1
    assert len(transport.sent[0].body) > 1024


async def test_a_failed_publish_reaches_every_waiter_of_its_envelope_and_the_lane_recovers() -> (
    None
):
    transport = GatedTransport(fail_with=ConnectionError("broker gone"))
    publisher = BatchingPublisher(transport, codec)
    results = await asyncio.gather(
        *(publisher.publish(ROUTE, alert(n)) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    transport.fail_with = None
    transport.auto_confirm = True
    await publisher.publish(ROUTE, alert(99))  # the lane is not stuck
    assert publisher.stats.items == 1


async def test_close_waits_for_in_flight_and_fails_what_is_left() -> None:
    transport = GatedTransport()
    publisher = BatchingPublisher(transport, codec, max_in_flight=1)
    first = asyncio.ensure_future(publisher.publish(ROUTE, alert(1)))
    queued = asyncio.ensure_future(publisher.publish(ROUTE, alert(2)))
    await settle()
    assert len(transport.sent) == 1
    closing = asyncio.ensure_future(publisher.close(grace=0.2))
    await settle()
    transport.confirm_all()
    await closing
    await first
    with pytest.raises(ConnectionError):
        await queued


async def test_publish_many_of_nothing_publishes_nothing() -> None:
    transport = GatedTransport()
    await BatchingPublisher(transport, codec).publish_many([])
    assert transport.sent == []


async def test_raw_bytes_are_published_unbatched_with_their_headers() -> None:
    transport = GatedTransport(auto_confirm=True)
    await BatchingPublisher(transport, codec).publish_raw(ROUTE, b"raw", headers={"h": 1})
    assert [(s.body, s.headers) for s in transport.sent] == [(b"raw", {"h": 1})]


@pytest.mark.parametrize(("items", "in_flight"), [(0, 1), (1, 0)])
def test_limits_must_be_positive(items: int, in_flight: int) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        BatchingPublisher(GatedTransport(), codec, max_items=items, max_in_flight=in_flight)


LINGERING = Route("ns.events", "record.event", linger_s=0.3)


async def test_a_lingering_route_holds_messages_for_company() -> None:
    transport = GatedTransport(auto_confirm=True)
    publisher = BatchingPublisher(transport, codec)
    first = asyncio.ensure_future(publisher.publish(LINGERING, alert(1)))
    await settle()
    assert transport.sent == []  # alone, it waits for others
    rest = asyncio.ensure_future(publisher.publish_many([(LINGERING, alert(2)), (ROUTE, alert(3))]))
    await settle()
    # The route that does not linger goes at once; the lingering one still waits.
    assert [[m.message_id for m in env] for env in decoded(transport)] == [["m3"]]
    async with asyncio.timeout(5):
        await asyncio.gather(first, rest)
    assert [[m.message_id for m in env] for env in decoded(transport)] == [["m3"], ["m1", "m2"]]


async def test_a_lingering_lane_that_fills_an_envelope_sends_it_at_once() -> None:
    transport = GatedTransport(auto_confirm=True)
    publisher = BatchingPublisher(transport, codec, max_items=4, max_in_flight=1)
    long_wait = Route("ns.events", "record.event", linger_s=60.0)
    task = asyncio.ensure_future(publisher.publish_many([(long_wait, alert(n)) for n in range(10)]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert [len(env) for env in decoded(transport)] == [4, 4]  # the last two linger
    await publisher.close(grace=5)
    await task
    assert [len(env) for env in decoded(transport)] == [4, 4, 2]


async def test_close_sends_what_lingers_so_a_shutdown_loses_nothing() -> None:
    transport = GatedTransport()
    publisher = BatchingPublisher(transport, codec)
    long_wait = Route("ns.events", "record.event", linger_s=60.0)
    task = asyncio.ensure_future(publisher.publish(long_wait, alert(1)))
    await settle()
    assert transport.sent == []
    closing = asyncio.ensure_future(publisher.close(grace=5))
    await confirm_until_done(transport, task)  # confirmed, not failed
    await closing
    assert [[m.message_id for m in env] for env in decoded(transport)] == [["m1"]]


async def test_after_a_lingering_lane_empties_the_next_message_lingers_again() -> None:
    transport = GatedTransport(auto_confirm=True)
    publisher = BatchingPublisher(transport, codec)
    short = Route("ns.events", "record.event", linger_s=0.05)
    async with asyncio.timeout(5):
        await publisher.publish(short, alert(1))
    task = asyncio.ensure_future(publisher.publish(short, alert(2)))
    await settle()
    assert len(transport.sent) == 1
    async with asyncio.timeout(5):
        await task
    assert len(transport.sent) == 2


async def test_what_is_left_of_a_failed_publish_is_not_sent_behind_its_retry() -> None:
    # A consumer publishes its effects on two lanes; one envelope fails, so
    # its delivery is handed back and handled again, the same ids published
    # anew. The other lane's copy from the failed call must not still go
    # out: queued with the new copy it would make one envelope repeat an id.
    transport = GatedTransport()
    publisher = BatchingPublisher(transport, codec, max_in_flight=1)
    busy = asyncio.ensure_future(publisher.publish(OTHER, alert(0)))
    await settle()
    effects = [(ROUTE, alert(1)), (OTHER, alert(2))]
    first = asyncio.ensure_future(publisher.publish_many(effects))
    await settle()
    assert [sent.routing_key for sent in transport.sent] == ["alert.y", "alert.x"]
    transport.waiting[1].set_exception(ConnectionError("nacked"))
    with pytest.raises(ConnectionError):
        await first
    again = asyncio.ensure_future(publisher.publish_many(effects))
    await settle()
    await confirm_until_done(transport, busy)
    await confirm_until_done(transport, again)

    envelopes = [[m.message_id for m in envelope] for envelope in decoded(transport)]
    assert all(len(ids) == len(set(ids)) for ids in envelopes), envelopes
    assert sum(ids.count("m2") for ids in envelopes) == 1
