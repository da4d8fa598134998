"""``boson submit --wait`` in-process: results as they arrive, Ctrl-C is prompt."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.cluster import ROOT


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_ctrl_c_in_process_prints_what_finished_and_exits_promptly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "boson", "submit", "burn", "--param", "seconds=2"],
        *["--count", "8", "--wait"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    # Four slots: four finish together, four are still running.
    first = await asyncio.wait_for(process.stdout.readline(), 90)
    assert b" succeeded on local-" in first
    interrupted_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err
    assert time.monotonic() - interrupted_at < 10
    shown = [first.decode().strip(), *out.decode().splitlines()]
    assert len(set(shown)) == len(shown)
    message = err.decode().strip()
    assert message.startswith(f"boson: interrupted: {len(shown)} of 8 finished; ")
    assert f"{8 - len(shown)} still running are abandoned (in-process): " in message
