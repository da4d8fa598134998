"""Fixtures and builders shared by the executor's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from boson_services.executor.handlers import ExecutorHandlers
from boson_services.executor.pool import TaskRunner
from boson_shared.contract.topology import Names
from boson_shared.handlers import discover

BUILTINS = "boson_services.executor.builtins"
SAMPLE_HANDLERS = "tests.unit.executor.sample_handlers"
STEERING_HANDLERS = "tests.e2e.steering_handlers"
NAMES = Names("t")


def executor_handlers(
    runner: TaskRunner, modules: list[str], *, node_id: str = "n1", slots: int = 2, **options: Any
) -> ExecutorHandlers:
    """Handlers for the handler modules named, with the tests' names and limits."""
    return ExecutorHandlers(
        node_id=node_id,
        slots=slots,
        registry=discover(modules),
        runner=runner,
        names=NAMES,
        max_inline_result_bytes=4096,
        completed_memory=100,
        **options,
    )


@pytest.fixture
async def handlers() -> AsyncIterator[ExecutorHandlers]:
    """Executor handlers on node n1 with two slots, the built-ins and the steering handlers."""
    runner = TaskRunner(2, start_method="forkserver")
    yield executor_handlers(runner, [BUILTINS, STEERING_HANDLERS])
    await runner.close()
