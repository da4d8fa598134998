"""Sending a task again (same id) after a publish that failed but did arrive."""

from __future__ import annotations

from boson.client import Client, TaskRequest
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskResult
from boson_shared.settings import BosonSettings


async def test_a_resend_of_a_task_whose_result_arrived_leaves_nothing_pending() -> None:
    """The connection dropped before the confirm, the task ran anyway, its result came;
    the caller sends the batch again with the same ids. Nothing may wait for a second
    result (pending would never reach zero, and close would keep the reply queue)."""
    transport = MemoryTransport(MemoryBroker())
    await transport.connect()
    client = Client(BosonSettings(), transport, EnvelopeCodec(Keyring.ephemeral()))
    await client.start()
    try:
        request = TaskRequest("noop", task_id="t-1")
        task = client.build_task(request)
        await client._on_result(
            TaskResult(
                message_id="t-1.result",
                task_id="t-1",
                handler="noop",
                status="succeeded",
                attempts=1,
                reply_to=client.client_id,
                submitted_at=task.submitted_at,
            )
        )
        (handle,) = await client.submit_many([request])
        assert client.pending() == 0
        assert (await handle.result(timeout=1)).status == "succeeded"
    finally:
        await client.close()
