"""Adversarial review of the issue 10 fixes: one child death, two releases (by trace).

A pool child's death is reported twice in the worker's main process: by Relier's ChildWatch
(``waitid``, within ~0.1 s) and by Celery's ``task_failure`` signal (``WorkerLostError``).
Both call ``LeaseKeeper.release_lost``; ChildWatch remembers what it released, the signal
handler does not, and the re-queue is a compare-and-set on the *owner* only. Every pool child
claims under its parent's lease id, so if another child of the same worker has claimed the
re-queued task before the second report arrives, that report takes the task away from the
live run: a third incarnation starts while the second still runs (the body runs twice at once)
and a death is counted that never happened (towards max_resurrections).

In a real worker Celery usually reports first and the race needs the re-claim (tens of ms)
to beat Celery's report; this test plays the two reports in the order that loses.
"""

from __future__ import annotations

import redis

from relier_testing import tasks
from relier_testing.helpers import KEYS, record


def test_second_report_of_one_child_death_does_not_release_the_next_run(
    relier_env: dict[str, str]
) -> None:
    from relier.phoenix import Ledger
    from relier.phoenix.lease import LeaseKeeper

    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    ledger = Ledger()
    keeper = LeaseKeeper(ledger, hostname="w@h", queues=["default", "re-queue"],
                         active_ids=set)
    keeper.register()
    task_id = tasks.multiply.push(2, 3).id

    def claim(queue: str) -> int:
        reply = ledger.claim(task_id=task_id, worker_id=keeper.worker_id, queue=queue)
        assert reply.kind == "claimed", reply
        return reply.epoch

    claim("default")  # child 1 runs it, and is SIGKILLed
    assert keeper.release_lost(task_id, "pool child died: signal 9 (SIGKILL)",
                               source="watch") == "done"
    epoch = claim("re-queue")  # child 2 of the same worker runs it again
    # Celery's WorkerLostError for the same (first) death arrives now.
    keeper.release_lost(task_id, "pool child died: signal 9 (SIGKILL)", source="celery")
    rec = record(client, task_id)
    assert rec.state == "running", [a.outcome for a in rec.history]
    assert rec.epoch == epoch
    assert rec.resurrections == 1
    assert client.hget(KEYS.task(task_id), "w") == keeper.worker_id.encode()
    # The next run stays in the worker's set (a lost lease would re-queue it from there).
    assert client.sismember(KEYS.worker_tasks(keeper.worker_id), task_id)
