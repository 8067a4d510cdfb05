"""Adversarial review of the issue 10 fixes: a task only a busy worker registered.

`task_unknown` handling re-publishes a task at once when some live worker registered it. When
that worker is busy (one slot, running a long task, no prefetch), only the worker lacking the
task takes messages from the queue: it gets the re-published message straight back, and after
MAX_REPUBLISH round trips (well under a second) the task is dead-lettered, although a worker
that has it would have run it a few seconds later. An ordinary heterogeneous fleet lost
healthy tasks this way. Fixed: such a bounce waits (0.5 s doubling, from a timer) and counts
apart from NeverClaimed (``relier.phoenix.registry.bounce_delay``, ``MAX_BOUNCES``).
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from relier.phoenix.ledger import Ledger
from relier.phoenix.registry import handle_unknown
from relier_testing import runtime_tasks, tasks
from relier_testing.helpers import KEYS, counter, record, wait_for
from relier_testing.workers import WorkerProcess

IMPORTS = {"RELIER_IMPORTS": "relier_testing.tasks,relier_testing.runtime_tasks"}


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


def test_a_bounce_lost_with_its_worker_is_republished_by_the_resurrector(
    relier_worker: Callable[..., WorkerProcess], resurrector: Callable[..., WorkerProcess],
    relier_env: dict[str, str],
) -> None:
    """The worker lacking the task dies while its bounce waits on the timer: not lost."""
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    receipt = runtime_tasks.echo.push("after a death")
    assert client.rpop("default") is not None  # taken by the worker that lacks it
    relier_worker(concurrency=1, pool="solo", queues=("default",), env=IMPORTS)  # has it
    dropped: list[float] = []
    outcome = handle_unknown(  # what that worker did, its timer dying with it
        Ledger(), task_id=receipt.id, name=runtime_tasks.echo.name, queue="default",
        body=b"[]", headers={}, content_type="", content_encoding="",
        later=lambda delay, action: dropped.append(delay))
    assert (outcome, dropped) == ("deferred", [0.5])
    assert record(client, receipt.id).state == "queued"
    resurrector(env={"RELIER_RESURRECTION_CLAIM_GRACE_PERIOD": "1"})
    assert receipt.get(timeout=30) == "after a death"
    rec = record(client, receipt.id)
    assert (rec.republished, rec.bounces) == (1, 0)
