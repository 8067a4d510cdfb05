"""Adversarial review of the issue 10 fixes: `rl` commands with bad input.

`rl worker drain NAME --timeout` takes any float: ``nan`` or a negative number makes the
worker hand off every running task at once (counted against RELIER_MAX_HANDOFFS) and exit,
and ``inf``/``nan`` end in ``Thread.join`` errors during the worker's shutdown. A typo must be a
usage error (exit 2) that asks nothing of the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from relier_testing.workers import WorkerProcess


@pytest.mark.parametrize("timeout", ["nan", "-5", "inf"])
def test_drain_with_a_meaningless_timeout_is_a_usage_error(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str], timeout: str
) -> None:
    worker = relier_worker(concurrency=1, pool="solo")
    done = subprocess.run(
        [sys.executable, "-m", "relier.cli", "worker", "drain", worker.hostname,
         f"--timeout={timeout}", "--no-wait"],
        env={**os.environ, **relier_env}, capture_output=True, text=True, timeout=60)
    time.sleep(2)  # a drain request is seen at the next renewal (a third of the lease TTL)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert worker.alive, worker.log()[-1500:]
