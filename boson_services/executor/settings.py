"""The executor's settings (``BOSON_`` variables; ``boson run executor`` flags)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from boson_shared.contract.messages import Identifier, new_id
from boson_shared.settings import BosonSettings


class ExecutorSettings(BosonSettings):
    node_id: Identifier = Field(default_factory=lambda: f"node-{new_id()[:8]}")
    slots: Annotated[int, Field(ge=1, le=1024)] = 2
    """Tasks run at once."""
    cpu: Annotated[float, Field(ge=0)] = 500.0
    """Capacity in demand units (docs/design.md#placement), per dimension."""
    memory: Annotated[float, Field(ge=0)] = 500.0
    gpu: Annotated[float, Field(ge=0)] = 0.0
    """GPUs, when neither configured devices nor NVML say (bound by index)."""
    gpu_devices: tuple[str, ...] = ()
    """This node's GPU devices, ``id[:model[:memory_mib]]`` each, ids as
    ``CUDA_VISIBLE_DEVICES`` takes them: they override discovery (and ``gpu``)."""
    gpu_discovery: bool = True
    """Ask NVML (the ``gpu`` extra) for the devices when none are configured."""
    prefetch_factor: Annotated[int, Field(ge=1, le=16)] = 2
    """Deliveries held per slot, so a slot never idles waiting for the balancer."""
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 1.0
    handler_modules: tuple[str, ...] = ()
    """Modules whose ``@handler`` functions this executor runs, besides the built-ins."""
    node_queue_expires_s: Annotated[float, Field(gt=0)] = 3600.0
    """A dead node's queue disappears this long after its last consumer (well
    after the balancer moved its work away)."""
    worker_start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"
    max_inline_result_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    record_start_hold_ms: Annotated[float, Field(ge=0, le=10_000)] = 200.0
    """How long a task's ``started`` event for the record waits before it is
    sent: a task that ends sooner has its result carry the start instead (one
    record event fewer); a longer task is shown started this much late."""
    completed_memory: Annotated[int, Field(ge=1)] = 200_000
    """Task ids remembered as done, so a repeat is never run or reported twice
    (about 10 MB, allocated at start; a repeat comes back within seconds)."""


__all__ = ["ExecutorSettings"]
