"""The SDK's retry rule: a handler's exception is retried only when asked."""

from __future__ import annotations

from boson.client import Client, TaskRequest
from boson.task_building import DEFAULT_MAX_RETRIES
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.settings import BosonSettings


def client() -> Client:
    return Client(
        BosonSettings(), MemoryTransport(MemoryBroker()), EnvelopeCodec(Keyring.ephemeral())
    )


def test_by_default_only_what_retrying_can_fix_is_retried() -> None:
    task = client().build_task(TaskRequest("noop"))
    assert task.max_retries == DEFAULT_MAX_RETRIES
    assert not task.retry_errors


def test_max_retries_asks_for_the_handlers_errors_to_be_retried_too() -> None:
    task = client().build_task(TaskRequest("noop", max_retries=2))
    assert (task.max_retries, task.retry_errors) == (2, True)
    none = client().build_task(TaskRequest("noop", max_retries=0))
    assert (none.max_retries, none.retry_errors) == (0, True)
