"""Property tests: any valid message or batch survives the envelope unchanged."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boson_shared.contract.codec import FLAG_BATCH, FLAG_COMPRESSED, EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    Alert,
    ClusterSnapshot,
    DataChunk,
    Message,
    NodeHeartbeat,
    NodeState,
    ResourceRequest,
    ResourceVector,
    TaskFailure,
    TaskResult,
    TaskSubmitted,
    TaskUsage,
)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ids = st.from_regex(r"[A-Za-z0-9._:@-]{1,24}", fullmatch=True)
handlers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
amounts = st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0, max_value=1, allow_nan=False)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**53)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
# Payloads small, large-and-compressible, and large-and-random, to exercise
# both sides of the compression decision.
blobs = (
    st.binary(max_size=64)
    | st.builds(lambda unit, n: unit * n, st.binary(min_size=1, max_size=8), st.integers(0, 4000))
    | st.binary(min_size=4096, max_size=20_000)
)
vectors = st.builds(ResourceVector, cpu=amounts, memory=amounts, gpu=amounts)


def codec() -> EnvelopeCodec:
    return EnvelopeCodec(Keyring({"k1": bytes(range(32)), "k2": bytes(32)}))


tasks = st.builds(
    TaskSubmitted,
    message_id=ids,
    task_id=ids,
    handler=handlers,
    params=st.dictionaries(st.text(max_size=10), json_like, max_size=6),
    data=st.none() | blobs,
    complexity=amounts,
    data_size=amounts,
    requests=st.none()
    | st.builds(
        ResourceRequest,
        cpu=st.none() | amounts,
        memory=st.none() | amounts,
        gpu=st.none()
        | st.floats(min_value=0, max_value=0.999, allow_nan=False)
        | st.integers(1, 62).map(float),
        gpu_model=st.none() | st.sampled_from(["A100", "A100|H100", "T4"]),
    ),
    timeout_s=st.floats(min_value=0.001, max_value=7 * 24 * 3600),
    max_retries=st.integers(0, 25),
    reply_to=ids,
    submitted_at=times,
    explain=st.booleans(),
)


@st.composite
def heartbeats(draw: st.DrawFn) -> NodeHeartbeat:
    slots = draw(st.integers(1, 1000))
    running = draw(st.integers(0, slots))
    return NodeHeartbeat(
        message_id=draw(ids),
        node_id=draw(ids),
        seq=draw(counts),
        sent_at=draw(times),
        started_at=draw(times),
        capacity=draw(vectors),
        allocated=draw(vectors),
        slots=slots,
        running=running,
        free_slots=slots - running,
        measured_cpu=draw(fractions),
        measured_memory=draw(fractions),
    )


@st.composite
def results(draw: st.DrawFn) -> TaskResult:
    failed = draw(st.booleans())
    return TaskResult(
        task_id=draw(ids),
        handler=draw(handlers),
        status="failed" if failed else "succeeded",
        output=None if failed else draw(json_like),
        error=TaskFailure(error_type="ValueError", message=draw(st.text(max_size=50)))
        if failed
        else None,
        node_id=draw(st.none() | ids),
        attempts=draw(st.integers(1, 10)),
        usage=draw(
            st.none()
            | st.builds(TaskUsage, wall_s=amounts, cpu_s=amounts, peak_memory_bytes=counts)
        ),
        reply_to=draw(ids),
        submitted_at=draw(times),
        finished_at=draw(times),
    )


@st.composite
def chunks(draw: st.DrawFn) -> DataChunk:
    data = draw(blobs)
    total = draw(st.integers(1, 50))
    return DataChunk(
        upload_id=draw(ids),
        digest=draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
        index=draw(st.integers(0, total - 1)),
        total_chunks=total,
        total_size=len(data) + draw(st.integers(0, 1000)),
        offset=0,
        data=data,
    )


alerts = st.builds(
    Alert,
    reason=st.sampled_from(["node-down", "node-up", "overload", "backlog", "anomaly"]),
    severity=st.sampled_from(["info", "warning", "critical"]),
    detail=st.text(max_size=200),
    node_id=st.none() | ids,
    value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    raised_at=times,
)


@st.composite
def snapshots(draw: st.DrawFn) -> ClusterSnapshot:
    nodes = []
    for beat in draw(st.lists(heartbeats(), max_size=8)):
        nodes.append(
            NodeState(
                node_id=beat.node_id,
                alive=draw(st.booleans()),
                capacity=beat.capacity,
                allocated=beat.allocated,
                slots=beat.slots,
                running=beat.running,
                free_slots=beat.free_slots,
                measured_cpu=beat.measured_cpu,
                measured_memory=beat.measured_memory,
                last_heartbeat_at=beat.sent_at,
            )
        )
    return ClusterSnapshot(
        monitor_id=draw(ids), seq=draw(counts), taken_at=draw(times), nodes=tuple(nodes)
    )


message_strategies: list[st.SearchStrategy[Any]] = [
    tasks,
    heartbeats(),
    results(),
    chunks(),
    alerts,
    snapshots(),
]
batches = st.one_of(
    *(st.lists(strategy, min_size=1, max_size=6) for strategy in message_strategies)
)


@PROPERTY_SETTINGS
@given(batch=batches, cipher=st.sampled_from(["aes-256-gcm", "chacha20-poly1305"]))
def test_any_valid_batch_round_trips(batch: list[Message], cipher: str) -> None:
    writer = EnvelopeCodec(codec().keyring, cipher=cipher)
    envelope = writer.encode(batch)
    assert bool(envelope[4] & FLAG_BATCH) == (len(batch) > 1)
    decoded = codec().decode(envelope)
    assert decoded == batch
    assert [type(m) for m in decoded] == [type(m) for m in batch]
    assert codec().peek_kind(envelope) == batch[0].kind


@PROPERTY_SETTINGS
@given(
    items=st.lists(
        st.dictionaries(
            st.text(max_size=12).filter(lambda key: key != "kind"), json_like, max_size=6
        ),
        min_size=1,
        max_size=5,
    ),
    kind=st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True),
)
def test_any_raw_item_maps_round_trip(items: list[dict[str, Any]], kind: str) -> None:
    c = codec()
    assert c.decode_raw(c.encode_raw(kind, items)) == (kind, items)


@PROPERTY_SETTINGS
@given(message=tasks)
def test_compression_never_grows_the_payload(message: TaskSubmitted) -> None:
    c = codec()
    envelope = c.encode([message])
    if envelope[4] & FLAG_COMPRESSED:
        uncompressed = EnvelopeCodec(c.keyring, compress_min_bytes=2**40).encode([message])
        assert len(envelope) < len(uncompressed)
    assert c.decode(envelope) == [message]
