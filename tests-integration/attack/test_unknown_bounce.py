"""Adversarial review of the issue 10 fixes: a task only a busy worker registered.

`task_unknown` handling re-publishes a task at once when some live worker registered it. When
that worker is busy (one slot, running a long task, no prefetch), only the worker lacking the
task takes messages from the queue: it gets the re-published message straight back, and after
MAX_REPUBLISH round trips (well under a second) the task is dead-lettered, although a worker
that has it would have run it a few seconds later. An ordinary heterogeneous fleet loses
healthy tasks this way.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from relier_testing import runtime_tasks, tasks
from relier_testing.helpers import KEYS, counter, record, wait_for
from relier_testing.workers import WorkerProcess

IMPORTS = {"RELIER_IMPORTS": "relier_testing.tasks,relier_testing.runtime_tasks"}


@pytest.mark.xfail(strict=True, reason=(
    "hole 9: a task only a busy worker registered is bounced into NeverClaimed within a second: "
    "docs/limitations.md"))
def test_task_registered_only_by_a_busy_worker_waits_for_it(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str]
) -> None:
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    relier_worker(concurrency=1, pool="solo", queues=("high_priority", "default"), env=IMPORTS)
    relier_worker(concurrency=1, pool="solo", queues=("default",))  # lacks runtime_tasks
    tasks.record.push("busy", 6.0)  # occupies the only worker that has echo
    wait_for(lambda: counter(client, "start", "busy") == 1, 15, "the capable worker busy")
    receipt = runtime_tasks.echo.push("wait for me")
    wait_for(lambda: client.hget(KEYS.task(receipt.id), "s") in (b"done", b"dead"), 30,
             "the echo task to leave")
    rec = record(client, receipt.id)
    assert rec.state == "done", (rec.state, rec.reason, rec.message)
