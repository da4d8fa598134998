"""Memory and disk alarms on one node: publishers block cluster-wide, then resume.

The alarm is raised on one node by lowering its threshold
(``set_vm_memory_high_watermark`` / ``set_disk_free_limit``) for a few
seconds while a client submits continuously. While it lasts nothing new is
confirmed, no service crashes and none spins (each under a fifth of a core);
after it, work resumes and every task is shown exactly once.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.cluster.feeder import Feeder
from tests.cluster.harness import cpu_seconds, gather_or_explain
from tests.reliability.harness import (
    assert_exactly_once,
    counting_client,
    record,
    start_pipeline,
    wait_for_nodes,
    wait_until,
)
from tests.support.cluster import ProcessCluster
from tests.support.rabbit_cluster import RabbitCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ALARM_S = 6.0
SETTLE_S = 1.5
"""Publishes already in flight when the alarm rises may still be confirmed."""
CPU_LIMIT = 0.2

ALARMS = {
    # kind: (rabbitmqctl command, value raising the alarm, value clearing it)
    "memory": ("set_vm_memory_high_watermark", "0.000001", "0.4"),
    "disk": ("set_disk_free_limit", "1000000GB", "50MB"),
}


@pytest.mark.parametrize("kind", sorted(ALARMS))
@pytest.mark.timeout(240)
async def test_alarm_blocks_publishers_then_everything_resumes(
    rabbit: RabbitCluster, processes: ProcessCluster, kind: str
) -> None:
    command, raise_value, clear_value = ALARMS[kind]
    await start_pipeline(processes, ["al-1", "al-2"], "--slots", "4")
    client = await counting_client(processes)
    feeder = Feeder(client)
    node = rabbit.nodes[0]

    async def alarm_on() -> bool:
        return bool(await asyncio.to_thread(rabbit.alarms, node))

    async def alarm_off() -> bool:
        return not await alarm_on()

    try:
        await wait_for_nodes(client, 2)
        started = time.monotonic()
        feeder.start()
        await wait_until(lambda: sum(client.shown.values()) >= 20, timeout=60)
        try:
            await asyncio.to_thread(rabbit.ctl, node, command, raise_value)
            raised_at = time.monotonic()
            await wait_until(alarm_on, timeout=20, step=0.2)
            await asyncio.sleep(SETTLE_S)
            window_start = time.monotonic()
            cpu_before = cpu_seconds(processes)
            await asyncio.sleep(ALARM_S)
            cpu_after = cpu_seconds(processes)
            window_end = time.monotonic()
        finally:
            await asyncio.to_thread(rabbit.ctl, node, command, clear_value)
        cleared_at = time.monotonic()
        await wait_until(alarm_off, timeout=30, step=0.2)
        confirmed_while_blocked = feeder.confirmed_between(window_start, window_end)
        cpu_share = {
            name: round((cpu_after[name] - cpu_before[name]) / (window_end - window_start), 3)
            for name in cpu_after
        }
        batches_before_resume = len(feeder.confirmed_at)
        await wait_until(lambda: len(feeder.confirmed_at) > batches_before_resume, timeout=30)
        resumed_s = time.monotonic() - cleared_at
        await asyncio.sleep(2)
        handles = await feeder.stop()
        for name, proc in processes.processes.items():
            assert proc.process.poll() is None, f"{name} exited: {processes.log(name)[-2000:]}"
        results = await gather_or_explain(rabbit, processes, client, handles, timeout=120)
        delivery = assert_exactly_once(client, results)
        assert confirmed_while_blocked == 0, "publishes were confirmed during the alarm"
        assert max(cpu_share.values()) <= CPU_LIMIT, cpu_share
        record(
            f"cluster_{kind}_alarm",
            delivery.as_dict()
            | {
                "alarm_node": node.name,
                "alarm_raised_after_s": window_start - raised_at - SETTLE_S,
                "blocked_window_s": window_end - window_start,
                "batches_confirmed_while_blocked": confirmed_while_blocked,
                "cpu_share_while_blocked": cpu_share,
                "first_confirm_after_clear_s": resumed_s,
                "resent_batches": feeder.resends,
                "run_s": time.monotonic() - started,
            },
        )
    finally:
        await feeder.stop()
        await client.close()
