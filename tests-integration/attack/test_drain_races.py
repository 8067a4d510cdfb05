"""Adversarial review of the issue 10 fixes: the drain and the hand-off cap.

A task leaves exactly one way. A drain that dead-letters a task because it reached
``RELIER_MAX_HANDOFFS`` must not then let the same run go on to completion: the body's effects
would happen while the ledger says the task is dead (its result discarded as "fenced"), and a
`rl dlq release` would run it a second time.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
import redis

from relier_testing import tasks
from relier_testing.helpers import KEYS, counter, record, wait_for
from relier_testing.workers import WorkerProcess


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_run_dead_lettered_by_the_handoff_cap_does_not_complete_afterwards(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis, pool: str
) -> None:
    """Hole: the drain dead-letters a task at the hand-off cap, then leaves its run going.

    ``Drain._run`` stops only the runs whose release answered ``done``; a release answered
    ``dead`` (max_handoffs_exceeded) is not stopped, so Celery's warm shutdown waits for it:
    the body finishes, its result is refused (the record is dead), and the DLQ entry says the
    task was handed off although its effects all happened.
    """
    worker = relier_worker(pool=pool, concurrency=1, env={
        "RELIER_MAX_HANDOFFS": "0", "RELIER_GRACEFUL_SHUTDOWN_TIMEOUT": "1"})
    receipt = tasks.record.push("capped", 4.0)
    wait_for(lambda: counter(client, "start", "capped") == 1, 15, "the run to start")
    worker.signal(signal.SIGTERM)
    worker.wait(30)
    rec = record(client, receipt.id)
    finished = counter(client, "done", "capped")
    # One way out: either the run completed and the task is done, or the task is dead and
    # its run was stopped before the body finished.
    assert (rec.state, finished) in {("done", 1), ("dead", 0)}, (
        rec.state, rec.reason, finished, worker.log()[-2000:])
    if rec.state == "dead":
        assert client.zscore(KEYS.dlq, receipt.id) is not None
