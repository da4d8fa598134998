"""The CI readiness probes fail with one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parents[2] / ".ci"


@pytest.mark.parametrize(
    ("script", "variable"),
    [("amqp_ready.py", "BOSON_TEST_AMQP_URL"), ("postgres_ready.py", "BOSON_TEST_DATABASE_URL")],
)
def test_an_unset_url_is_one_line_and_exit_code_2(script: str, variable: str) -> None:
    environment = {key: value for key, value in os.environ.items() if key != variable}
    done = subprocess.run(
        [sys.executable, str(CI / script), "--timeout", "1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert variable in done.stderr
