"""The executor's GPUs: configured and discovered devices, binding, freeing, heartbeats."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence

import pytest

from boson.launcher import EmbeddedCluster, derive
from boson_services.executor.app import ExecutorService
from boson_services.executor.gpus import (
    GpuBook,
    Nvml,
    model_name,
    parse_configured,
    resolve_gpus,
)
from boson_services.executor.handlers import ExecutorHandlers
from boson_services.executor.pool import TaskRunner
from boson_services.executor.settings import ExecutorSettings
from boson_shared.contract.messages import ResourceVector, TaskAssigned, TaskResult, TaskSubmitted
from boson_shared.errors import InvalidTaskInputError, TaskTimeoutError
from boson_shared.runtime.consumer_spec import Emit
from boson_shared.settings import BosonSettings
from tests.unit.executor.conftest import BUILTINS, SAMPLE_HANDLERS, executor_handlers

FAKE = ("GPU-fake-0:A100:40960", "GPU-fake-1:A100:40960", "GPU-fake-2:T4:15360")


@pytest.fixture
async def handlers() -> AsyncIterator[ExecutorHandlers]:
    runner = TaskRunner(2, start_method="forkserver")
    gpus, _ = resolve_gpus(FAKE, 0.0, None)
    yield executor_handlers(runner, [BUILTINS, SAMPLE_HANDLERS], node_id="g1", gpus=GpuBook(gpus))
    await runner.close()


def assigned(
    task_id: str,
    gpu: float,
    devices: tuple[int, ...],
    handler: str = "gpu_devices",
    **params: object,
) -> TaskAssigned:
    task = TaskSubmitted(
        task_id=task_id, handler=handler, params=params, reply_to="c1", timeout_s=5.0
    )
    return TaskAssigned(
        task=task,
        demand=ResourceVector(cpu=1, memory=1, gpu=gpu),
        node_id="g1",
        devices=devices,
    )


def output(emits: Sequence[Emit]) -> dict[str, object]:
    (emit,) = emits
    assert isinstance(emit.message, TaskResult)
    assert emit.message.status == "succeeded", emit.message.error
    out = emit.message.output
    assert isinstance(out, dict)
    return out


async def test_a_worker_process_sees_exactly_its_devices(handlers: ExecutorHandlers) -> None:
    """Real environment variables in the child, from configured (fake) device ids."""
    whole = output(await handlers.on_assigned(assigned("w", 2.0, (0, 2))))
    assert whole["CUDA_VISIBLE_DEVICES"] == "GPU-fake-0,GPU-fake-2"
    assert whole["NVIDIA_VISIBLE_DEVICES"] == "GPU-fake-0,GPU-fake-2"
    assert whole["memory_budget_mib"] is None
    assert whole["devices"] == ["GPU-fake-0", "GPU-fake-2"]
    assert whole["pid"] != os.getpid()
    shared = output(await handlers.on_assigned(assigned("s", 0.25, (1,))))
    assert shared["CUDA_VISIBLE_DEVICES"] == "GPU-fake-1"
    assert shared["memory_budget_mib"] == str(40960 // 4)
    none = output(await handlers.on_assigned(assigned("n", 0.0, ())))
    assert none["CUDA_VISIBLE_DEVICES"] == ""
    assert none["NVIDIA_VISIBLE_DEVICES"] == ""
    assert none["memory_budget_mib"] is None
    # A worker that ran with other devices was replaced: a process that has
    # started CUDA keeps the devices it started with.
    assert len({whole["pid"], shared["pid"], none["pid"]}) == 3
    assert handlers.gpus.book.held == [0, 0, 0]


async def test_devices_are_held_while_running_and_freed_on_every_end(
    handlers: ExecutorHandlers,
) -> None:
    book = handlers.gpus.book
    running = asyncio.ensure_future(handlers.on_assigned(assigned("slow", 0.5, (2,), seconds=1.0)))
    for _ in range(100):
        if book.held[2]:
            break
        await asyncio.sleep(0.02)
    assert book.held == [0, 0, 500]
    states = handlers.gpus.states()
    assert [s.allocated_milli for s in states] == [0, 0, 500]
    assert handlers.allocated().gpu == 0.5
    output(await running)
    assert book.held == [0, 0, 0]
    # Timeout: the worker is killed, the devices come back.
    task = assigned("late", 1.0, (0,), handler="sleepy", seconds=30)
    task = task.model_copy(update={"task": task.task.model_copy(update={"timeout_s": 0.3})})
    with pytest.raises(TaskTimeoutError):
        await handlers.on_assigned(task)
    assert book.held == [0, 0, 0]
    # Failure in the handler.
    with pytest.raises(Exception, match="boom"):
        await handlers.on_assigned(assigned("bad", 1.0, (1,), handler="explode"))
    assert book.held == [0, 0, 0]
    # Cancelled (the executor draining, or a cancel): freed too.
    cancelled = asyncio.ensure_future(
        handlers.on_assigned(assigned("c", 3.0, (0, 1, 2), handler="sleepy", seconds=30))
    )
    for _ in range(100):
        if book.held[0]:
            break
        await asyncio.sleep(0.02)
    assert book.held == [1000, 1000, 1000]
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert book.held == [0, 0, 0]
    assert handlers.active == {}


async def test_devices_that_are_not_the_nodes_are_refused(handlers: ExecutorHandlers) -> None:
    with pytest.raises(InvalidTaskInputError, match="GPU devices"):
        await handlers.on_assigned(assigned("x", 1.0, (7,)))
    with pytest.raises(InvalidTaskInputError, match="GPU devices"):
        await handlers.on_assigned(assigned("y", 2.0, (0,)))
    assert handlers.gpus.book.held == [0, 0, 0]


async def test_an_assignment_without_devices_gets_them_by_the_choice_rule(
    handlers: ExecutorHandlers,
) -> None:
    out = output(await handlers.on_assigned(assigned("older", 0.5, ())))
    assert out["CUDA_VISIBLE_DEVICES"] == "GPU-fake-0"


def test_configured_devices_parse_and_bad_ones_are_refused() -> None:
    gpus = parse_configured(["0", "1:A100", "MIG-GPU-abc/1/0:A100:5120"])
    assert [(g.index, g.device_id, g.model, g.memory_mib) for g in gpus] == [
        (0, "0", "", 0),
        (1, "1", "A100", 0),
        (2, "MIG-GPU-abc/1/0", "A100", 5120),
    ]
    for bad in (["a:b:c:d"], ["x:A100:lots"], ["0", "0"], [":A100"]):
        with pytest.raises(ValueError, match="gpu device"):
            parse_configured(bad)


def test_without_nvml_or_devices_the_executor_says_so() -> None:
    gpus, said = resolve_gpus((), 0.0, None)
    assert gpus == []
    assert said.startswith("GPUs: none")
    gpus, said = resolve_gpus((), 2.0, None)
    assert [g.device_id for g in gpus] == ["0", "1"]
    assert "bound by index" in said
    nvml = Nvml()
    if nvml.module is None:
        gpus, said = resolve_gpus((), 0.0, nvml)
        assert gpus == []
        assert nvml.reason in said
    assert model_name("NVIDIA A100-SXM4-40GB") == "A100-SXM4-40GB"
    assert model_name("Tesla T4") == "T4"


def _nvml_gpus() -> int:
    nvml = Nvml()
    try:
        return len(nvml.devices())
    except Exception:
        return 0


@pytest.mark.skipif(
    _nvml_gpus() == 0,
    reason="no NVIDIA GPU here (NVML absent or sees no device): discovery runs where one exists",
)
def test_nvml_discovery_finds_each_device_with_its_model_memory_and_uuid() -> None:
    nvml = Nvml()
    gpus, said = resolve_gpus((), 0.0, nvml)
    assert gpus
    assert "discovered through NVML" in said
    for k, gpu in enumerate(gpus):
        assert gpu.index == k
        assert gpu.uuid is not None
        assert gpu.uuid.startswith(("GPU-", "MIG-"))
        assert gpu.device_id == gpu.uuid
        assert gpu.model
        assert gpu.memory_mib > 0
    usage = nvml.usage(gpus)
    assert len(usage) == len(gpus)
    for util, used in usage:
        assert util is None or 0.0 <= util <= 1.0
        assert used is None or used >= 0
    states = GpuBook(gpus).states(usage)
    assert [s.uuid for s in states] == [g.uuid for g in gpus]


async def test_the_heartbeat_carries_each_device_and_capacity_is_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = BosonSettings(namespace="hb", instance_id="hb")
    cluster = EmbeddedCluster(settings)
    with caplog.at_level(logging.INFO, logger="boson_services.executor.app"):
        service = ExecutorService(
            derive(ExecutorSettings, settings, node_id="g", gpu_devices=FAKE, gpu=8.0),
            cluster.transport(),
            cluster._codec(),
        )
    assert "GPUs: 3 configured (GPU-fake-0, GPU-fake-1, GPU-fake-2)" in caplog.text
    service.gpu_book.hold("t", 0.5, (2,))
    beat = service.make_heartbeat()
    assert beat.capacity.gpu == 3.0
    assert beat.allocated.gpu == 0.5
    assert [(g.index, g.model, g.memory_mib, g.allocated_milli) for g in beat.gpus] == [
        (0, "A100", 40960, 0),
        (1, "A100", 40960, 0),
        (2, "T4", 15360, 500),
    ]
    assert all(g.utilisation is None for g in beat.gpus)  # no NVML for configured ids
    await service.runner.close()
