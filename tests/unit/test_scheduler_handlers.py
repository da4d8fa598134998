"""The scheduler's handlers: batch placement, pending, never, the ingress age limit."""

from __future__ import annotations

from collections.abc import Sequence

from boson_services.scheduler.handlers import SchedulerHandlers
from boson_shared.contract.messages import (
    ClusterSnapshot,
    NodeState,
    ResourceRequest,
    ResourceVector,
    TaskEvent,
    TaskPlaced,
    TaskResult,
    TaskSubmitted,
)
from boson_shared.contract.topology import RK_PLACED, RK_RECORD_EVENT, Names, rk_result
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.runtime.publisher import Route
from boson_shared.scheduling.demand import LinearDemandModel
from tests.support.fakes import Clock
from tests.support.results import failure_sent

NOW = 1_700_000_000.0
MAX_AGE = 60.0
NAMES = Names("sched-test")


def handlers(clock: Clock | None = None, strategy: str = "binpack") -> SchedulerHandlers:
    return SchedulerHandlers(
        names=NAMES,
        strategy=strategy,  # type: ignore[arg-type]
        demand_model=LinearDemandModel(),
        reservation_ttl_s=10.0,
        ingress_max_age_s=MAX_AGE,
        clock=clock or Clock(),
        wall_clock=lambda: NOW,
    )


def snapshot(
    allocated: dict[str, float], *, seq: int = 1, capacity: float = 500.0, dead: Sequence[str] = ()
) -> ClusterSnapshot:
    return ClusterSnapshot(
        monitor_id="m",
        seq=seq,
        nodes=tuple(
            NodeState(
                node_id=node_id,
                alive=node_id not in dead,
                capacity=ResourceVector(cpu=capacity, memory=capacity),
                allocated=ResourceVector(cpu=units, memory=units),
                slots=4,
                running=0,
                free_slots=4,
                measured_cpu=units / capacity,
                measured_memory=units / capacity,
                last_heartbeat_at=NOW,
            )
            for node_id, units in allocated.items()
        ),
    )


WORKED = {"node-1": 350.0, "node-2": 400.0, "node-3": 300.0, "node-4": 250.0, "node-5": 200.0}


def task(
    number: int, complexity: float = 100, data_size: float = 1000, **fields: object
) -> TaskSubmitted:
    values: dict[str, object] = {"submitted_at": NOW - 1}
    values.update(fields)
    return TaskSubmitted(
        task_id=f"t{number}",
        handler="noop",
        reply_to="client-1",
        complexity=complexity,
        data_size=data_size,
        **values,  # type: ignore[arg-type]
    )


def placed(emits: Sequence[Emit]) -> list[TaskPlaced]:
    out = [e.message for e in emits if isinstance(e.message, TaskPlaced)]
    assert all(
        e.route == Route(NAMES.work_exchange, RK_PLACED, mandatory=True)
        for e in emits
        if isinstance(e.message, TaskPlaced)
    )
    return out


def results(emits: Sequence[Emit]) -> list[TaskResult]:
    out = [e.message for e in emits if isinstance(e.message, TaskResult)]
    for e in emits:
        if isinstance(e.message, TaskResult):
            assert (e.route.exchange, e.route.routing_key) == (
                NAMES.events_exchange,
                rk_result("client-1"),
            )
    return out


async def test_the_worked_example_places_demand_110_on_the_07_node() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot(WORKED))
    (one,) = placed(await scheduler.on_submitted(task(1, explain=True)))
    assert one.demand == ResourceVector(cpu=110, memory=110)
    assert one.node_id == "node-1"
    assert one.message_id == "t1.placed"
    assert one.explanation is not None
    chosen = next(n for n in one.explanation.nodes if n.node_id == "node-1")
    assert chosen.utilisation_after is not None
    assert round(chosen.utilisation_after, 2) == 0.92


async def test_a_batch_is_placed_in_one_call_with_reservations_between_items() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot(WORKED))
    emits = await scheduler.on_submitted_batch([task(i, 50, 2000) for i in range(4)])
    nodes = [p.node_id for p in placed(emits)]
    # 70 units each: node-2 (100 free) takes one, then node-1 (150 free) two,
    # then node-3 — a burst does not pile onto one node between snapshots.
    assert nodes == ["node-2", "node-1", "node-1", "node-3"]
    assert len(scheduler.reservations) == 4
    assert scheduler.placed_total == 4
    # A snapshot that does not show them yet keeps the reservations on top.
    scheduler.on_snapshot(snapshot(WORKED, seq=2))
    (fifth,) = placed(await scheduler.on_submitted(task(5, 50, 2000)))
    assert fifth.node_id == "node-3"


async def test_a_task_that_fits_no_node_now_is_placed_pending() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot({"a": 450.0, "b": 480.0}))
    (pending,) = placed(await scheduler.on_submitted(task(1)))
    assert pending.node_id is None
    assert pending.demand.cpu == 110
    assert len(scheduler.reservations) == 0


async def test_with_no_nodes_known_yet_tasks_wait_as_pending() -> None:
    (pending,) = placed(await handlers().on_submitted(task(1)))
    assert pending.node_id is None


async def test_a_task_larger_than_any_node_gets_a_failed_result() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot({"a": 0.0, "b": 0.0}))
    emits = await scheduler.on_submitted_batch([task(1, complexity=600), task(2)])
    (failed,) = results(emits)
    assert failed.task_id == "t1"
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.error_type == "Unplaceable"
    assert "largest: cpu=500" in failed.error.message
    assert failed.message_id == "t1.result"
    assert [p.task.task_id for p in placed(emits)] == ["t2"]


async def test_explicit_requests_win_over_the_model() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot({"a": 0.0}))
    emits = await scheduler.on_submitted(task(1, requests=ResourceRequest(cpu=700)))
    assert results(emits)[0].error is not None


async def test_a_stale_submission_is_refused_at_ingress_and_the_rest_go_on() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot(WORKED))
    stale = task(1, submitted_at=NOW - MAX_AGE - 5)
    fresh = task(2, submitted_at=NOW - MAX_AGE + 5)
    emits = await scheduler.on_submitted_batch([stale, fresh])
    (refused,) = results(emits)
    assert refused.task_id == "t1"
    assert refused.error is not None
    assert refused.error.error_type == "SubmissionTooOld"
    assert [p.task.task_id for p in placed(emits)] == ["t2"]
    assert "t1" not in scheduler.reservations


async def test_an_older_snapshot_is_ignored() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot({"a": 0.0}, seq=5))
    scheduler.on_snapshot(snapshot({"a": 490.0}, seq=4))
    (one,) = placed(await scheduler.on_submitted(task(1)))
    assert one.node_id == "a"


async def test_dead_nodes_are_not_placed_on() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot(WORKED, dead=["node-1"]))
    (one,) = placed(await scheduler.on_submitted(task(1)))
    assert one.node_id == "node-3"


async def test_a_node_on_probation_is_not_placed_on() -> None:
    scheduler = handlers()
    view = snapshot(WORKED)
    nodes = tuple(n.model_copy(update={"on_probation": n.node_id == "node-1"}) for n in view.nodes)
    scheduler.on_snapshot(view.model_copy(update={"nodes": nodes}))
    (one,) = placed(await scheduler.on_submitted(task(1)))
    assert one.node_id == "node-3"  # node-1, the worked example's choice, is on probation


async def test_a_result_frees_its_reservation() -> None:
    clock = Clock()
    scheduler = handlers(clock)
    scheduler.on_snapshot(snapshot({"a": 300.0}))
    (first,) = placed(await scheduler.on_submitted(task(1, complexity=150, data_size=0)))
    assert first.node_id == "a"
    (second,) = placed(await scheduler.on_submitted(task(2, complexity=150, data_size=0)))
    assert second.node_id is None  # 50 free after the reservation
    done = TaskResult(
        task_id="t1", handler="noop", status="succeeded", reply_to="client-1", submitted_at=NOW
    )
    await scheduler.handle_event(done)
    (third,) = placed(await scheduler.on_submitted(task(3, complexity=150, data_size=0)))
    assert third.node_id == "a"


async def test_reservations_expire_after_their_ttl() -> None:
    clock = Clock()
    scheduler = handlers(clock)
    scheduler.on_snapshot(snapshot({"a": 300.0}))
    placed(await scheduler.on_submitted(task(1, complexity=150, data_size=0)))
    clock.now = 11.0
    (again,) = placed(await scheduler.on_submitted(task(2, complexity=150, data_size=0)))
    assert again.node_id == "a"


async def test_a_submission_the_scheduler_gives_up_on_fails_at_the_client() -> None:
    # Out of retries (say the demand model kept failing): the client must get
    # a failed result, not wait for ever on a dead-lettered submission.
    task = TaskSubmitted(task_id="stuck", handler="noop", reply_to="c1", submitted_at=NOW)
    (emit,) = await handlers().on_exhausted(task, RuntimeError("model exploded"), 4)
    failure = failure_sent(emit, NAMES, "c1", attempts=4)
    assert failure.error_type == "RuntimeError"
    assert "model exploded" in failure.message


class ExplodingModel:
    def estimate(
        self, complexity: float, data_size: float, requests: ResourceRequest | None = None
    ) -> ResourceVector:
        raise RuntimeError("model exploded")


async def test_the_scheduler_service_reports_a_submission_out_of_retries() -> None:
    from boson.launcher import EmbeddedCluster
    from boson_services.scheduler.app import SchedulerService
    from boson_shared.settings import BosonSettings

    cluster = EmbeddedCluster(
        BosonSettings(namespace="sched-exhaust", retry_delays_ms=(20, 40), max_attempts=2)
    )
    try:
        await cluster.start_control_plane()
        scheduler = next(s for s in cluster.services if isinstance(s, SchedulerService))
        scheduler.handlers.demand_model = ExplodingModel()
        client = await cluster.client()
        handle = await client.submit("noop")
        result = await handle.result(timeout=10)
        assert result.status == "failed"
        assert result.attempts == 2
        assert result.error is not None
        assert "model exploded" in result.error.message
        await client.close()
    finally:
        await cluster.stop()


def record_events(emits: Sequence[Emit]) -> list[TaskEvent]:
    return [e.message for e in emits if isinstance(e.message, TaskEvent)]


async def test_for_the_record_a_placement_carries_the_inputs_and_lingers() -> None:
    scheduler = SchedulerHandlers(
        names=NAMES,
        strategy="binpack",
        demand_model=LinearDemandModel(),
        reservation_ttl_s=10.0,
        ingress_max_age_s=MAX_AGE,
        record=True,
        record_linger_s=0.01,
        clock=Clock(),
        wall_clock=lambda: NOW,
    )
    scheduler.on_snapshot(snapshot({"a": 0.0}))
    stale = task(1, submitted_at=NOW - MAX_AGE - 5)
    too_big = task(2, complexity=600)
    emits = await scheduler.on_submitted_batch([stale, too_big, task(3)])
    events = {(e.task_id, e.stage): e for e in record_events(emits)}
    # One event a placed task: its placement, with what its submission said.
    assert sorted(events) == [("t1", "submitted"), ("t2", "submitted"), ("t3", "placed")]
    placement = events["t3", "placed"]
    assert (placement.handler, placement.submitter, placement.node_id) == ("noop", "client-1", "a")
    assert (placement.complexity, placement.data_size, placement.input_bytes) == (100, 1000, 0)
    assert placement.demand is not None
    # Tasks never placed still tell the record their inputs.
    assert events["t2", "submitted"].complexity == 600
    routes = {e.route for e in emits if isinstance(e.message, TaskEvent)}
    assert routes == {Route(NAMES.events_exchange, RK_RECORD_EVENT, linger_s=0.01)}


async def test_a_placement_carries_the_tasks_tenant_and_priority_to_the_balancer() -> None:
    scheduler = handlers()
    scheduler.on_snapshot(snapshot(WORKED))
    emits = await scheduler.on_submitted_batch(
        [task(1, tenant="research", priority=100), task(2, tenant="batch", priority=-5)]
    )
    placements = {p.task.task_id: p for p in placed(emits)}
    assert (placements["t1"].task.tenant, placements["t1"].task.priority) == ("research", 100)
    assert (placements["t2"].task.tenant, placements["t2"].task.priority) == ("batch", -5)
    (unnamed,) = placed(await scheduler.on_submitted(task(3)))
    assert (unnamed.task.tenant, unnamed.task.priority) == ("default", 0)
