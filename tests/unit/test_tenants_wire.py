"""The wire format of tenants: a task's tenant and priority, preemption, the report."""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.envelope import MAGIC
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import (
    MESSAGE_TYPES,
    CancelTask,
    ResourceVector,
    TaskAssigned,
    TaskPlaced,
    TaskSubmitted,
)
from boson_shared.contract.tenants_report import TenantsReport, TenantUsage

KEY = bytes(range(32))


def codec() -> EnvelopeCodec:
    return EnvelopeCodec(Keyring({"k1": KEY}))


def sealed(kind: str, items: list[dict[str, Any]], version: int) -> bytes:
    """An envelope of ``items`` written with schema ``version``, as an older writer would."""
    nonce = os.urandom(12)
    header = MAGIC + bytes((1, 0, 2)) + b"k1" + bytes((len(kind),)) + kind.encode() + nonce
    plain = msgpack.packb({"v": version, "items": items}, use_bin_type=True)
    return header + AESGCM(KEY).encrypt(nonce, plain, header)


def task(**fields: Any) -> TaskSubmitted:
    return TaskSubmitted(task_id="t1", handler="noop", reply_to="client-1", **fields)


def test_a_task_of_the_previous_version_is_the_default_tenants_at_priority_zero() -> None:
    item = task().model_dump(mode="python", exclude={"kind", "tenant", "priority"})
    (read,) = codec().decode(sealed("task.submitted", [item], version=3))
    assert isinstance(read, TaskSubmitted)
    assert (read.tenant, read.priority) == ("default", 0)
    placed = TaskPlaced(
        task=task(), demand=ResourceVector(cpu=1), node_id=None, strategy="binpack"
    ).model_dump(mode="python", exclude={"kind", "dispatched", "preempted"})
    del placed["task"]["tenant"], placed["task"]["priority"]
    (old,) = codec().decode(sealed("task.placed", [placed], version=3))
    assert isinstance(old, TaskPlaced)
    assert (old.task.tenant, old.dispatched, old.preempted) == ("default", 0, 0)


def test_tenant_and_priority_travel_with_the_task_through_placement_and_assignment() -> None:
    submitted = task(tenant="research", priority=-1000)
    placed = TaskPlaced(task=submitted, demand=ResourceVector(), node_id="n1", strategy="s")
    assigned = TaskAssigned(task=submitted, demand=ResourceVector(), node_id="n1", preempted=2)
    c = codec()
    for message in (submitted, placed, assigned):
        assert c.decode(c.encode([message])) == [message]


@pytest.mark.parametrize("priority", [-1001, 1001, 10**9])
def test_a_priority_outside_the_range_is_a_validation_error(priority: int) -> None:
    with pytest.raises(ValidationError, match="priority"):
        task(priority=priority)


@pytest.mark.parametrize("tenant", ["", "has space", "x" * 65, "a/b"])
def test_a_malformed_tenant_name_is_a_validation_error(tenant: str) -> None:
    with pytest.raises(ValidationError, match="tenant"):
        task(tenant=tenant)


def test_a_preemption_names_its_node_and_a_cancel_does_not() -> None:
    preempt = CancelTask(task_ids=("t1",), reply_to="b1", reason="preempted", node_id="n1")
    c = codec()
    assert c.decode(c.encode([preempt])) == [preempt]
    with pytest.raises(ValidationError, match="names the node"):
        CancelTask(task_ids=("t1",), reply_to="b1", reason="preempted")
    with pytest.raises(ValidationError, match="names the node"):
        CancelTask(task_ids=("t1",), reply_to="c1", node_id="n1")
    old = {"task_ids": ["t1"], "reply_to": "c1", "requested_at": 1.0, "message_id": "m1"}
    (read,) = c.decode(sealed("task.cancel", [old], version=1))
    assert isinstance(read, CancelTask)
    assert read.reason == "requested"


def test_the_tenants_report_is_a_registered_kind_that_round_trips() -> None:
    assert MESSAGE_TYPES["tenants.report"] is TenantsReport
    report = TenantsReport(
        balancer_id="balancer-1",
        seq=3,
        pool={"cpu": 16.0, "memory": 64.0, "gpu": 0.0},
        grace_s=30.0,
        tenants=(
            TenantUsage(
                name="a",
                weight=2.0,
                may_preempt=True,
                quota={"cpu": 8.0},
                guarantee={"cpu": 8.0},
                usage={"cpu": 2.0},
                pending={"cpu": 6.0},
                waiting=6,
                running=2,
            ),
            TenantUsage(name="b", weight=1.0, may_preempt=False, borrowing_limit={"cpu": 8}),
        ),
    )
    c = codec()
    assert c.decode(c.encode([report])) == [report]
    with pytest.raises(ValidationError):
        TenantUsage(name="a", weight=0.0, may_preempt=False)
    with pytest.raises(ValidationError):
        TenantUsage(name="a", weight=1.0, may_preempt=False, usage={"cpu": -1.0})
