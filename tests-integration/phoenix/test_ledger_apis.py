"""The Python APIs over the ledger: dead-letter queue, task story, drain, checkpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from relier.core.exceptions import (
    AdmissionRejectedError,
    EpochFencedError,
    TaskDeadLetteredError,
    TaskNotFoundError,
)
from relier.core.pipeline import Job, TaskOptions
from relier.core.settings import Settings
from relier.phoenix import DeadLetterQueue, Ledger, PhoenixMiddleware, request_drain, task_story
from relier_testing import tasks
from relier_testing.helpers import KEYS, counter, dispatch_raw, record, wait_for
from relier_testing.workers import WorkerProcess


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def test_dead_letter_queue_list_show_release_purge(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=2)
    client.set("test:broken:k1", 1)
    failed = [tasks.flaky.push("k1"), tasks.fail.push("x"), tasks.fail.push("y")]
    for receipt in failed:
        with pytest.raises(TaskDeadLetteredError):
            receipt.get(timeout=20)
    dlq = DeadLetterQueue()
    assert dlq.count() == 3
    listed = dlq.list()
    assert [e.dead_ms for e in listed] == sorted((e.dead_ms for e in listed), reverse=True)
    assert {e.task_id for e in dlq.list(reason="ValueError")} == {failed[1].id, failed[2].id}
    assert [e.task_id for e in dlq.list(task="relier_testing.tasks.flaky")] == [failed[0].id]
    assert len(dlq.list(limit=1)) == 1

    entry = dlq.show(failed[0].id)
    assert entry.reason == "RuntimeError"
    assert "k1 is broken" in entry.message
    assert "RuntimeError" in entry.traceback
    assert entry.envelope
    assert [a.outcome for a in entry.history] == ["failed"]
    with pytest.raises(TaskNotFoundError):
        dlq.show("no-such-task")

    client.delete("test:broken:k1")  # the fix is deployed
    assert dlq.release(failed[0].id)
    assert not dlq.release(failed[0].id)  # no longer dead-lettered
    assert failed[0].get(timeout=20) == "k1 ok"
    rec = record(client, failed[0].id)
    assert rec.epoch == 2
    assert rec.attempt == 2
    assert [a.outcome for a in rec.history] == ["failed", "released", "completed"]
    assert dlq.count() == 2

    assert dlq.purge(failed[1].id)
    assert not client.exists(KEYS.task(failed[1].id))
    assert dlq.purge_all() == 1
    assert dlq.count() == 0


def test_release_all_by_reason(relier_worker: Callable[..., WorkerProcess],
                               client: redis.Redis) -> None:
    for key in ("r1", "r2"):
        client.set(f"test:broken:{key}", 1)
    receipts = [tasks.flaky.push("r1"), tasks.flaky.push("r2")]
    relier_worker(concurrency=2)
    for receipt in receipts:
        with pytest.raises(TaskDeadLetteredError):
            receipt.get(timeout=20)
    client.delete("test:broken:r1", "test:broken:r2")
    assert DeadLetterQueue().release_all(reason="RuntimeError") == 2
    assert [r.get(timeout=20) for r in receipts] == ["r1 ok", "r2 ok"]


def test_release_all_stops_at_capacity_and_says_how_far_it_got(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    from relier.admission import AdmissionPolicy
    from relier.core.settings import Settings

    client.set("test:broken:cap", 1)
    receipts = [tasks.flaky.push("cap") for _ in range(3)]
    relier_worker(concurrency=1)
    for receipt in receipts:
        with pytest.raises(TaskDeadLetteredError):
            receipt.get(timeout=20)
    limited = Settings.load(environ={"RELIER_REDIS_URL": os.environ["RELIER_REDIS_URL"],
                                     "RELIER_ADMISSION_LIMIT": "1",
                                     "RELIER_ADMISSION_WINDOW": "60"}, env_file=None)
    policy = AdmissionPolicy(limited)
    client.delete(KEYS.admission("global"))  # forget the three dispatches above
    dlq = DeadLetterQueue(limited, admission=lambda record: policy.scopes(record.queue))
    with pytest.raises(AdmissionRejectedError, match=r"1 task\(s\) released") as info:
        dlq.release_all()
    assert "run the same release again" in str(info.value)
    assert dlq.count() == 2  # the rest wait in the DLQ, nothing dropped


def test_task_story(relier_worker: Callable[..., WorkerProcess], client: redis.Redis) -> None:
    worker = relier_worker(concurrency=1)
    receipt = tasks.checkpointed.push(30, "story", pause=0.1)
    wait_for(lambda: counter(client, "item", "story:2"), 15, "progress")
    running = task_story(receipt.id)
    assert running.record.state == "running"
    assert running.owner_hostname == worker.hostname
    assert running.lease_expires_in_ms is not None
    assert 0 < running.lease_expires_in_ms <= 3000
    assert running.checkpoint_bytes > 0
    assert running.args == [30, "story"]
    receipt.get(timeout=30)
    done = task_story(receipt.id)
    assert done.record.state == "done"
    assert done.result == {"processed_from": 0}
    assert [a.outcome for a in done.record.history] == ["completed"]
    assert done.record.dispatched_ms <= done.record.started_ms <= done.record.ended_ms
    with pytest.raises(TaskNotFoundError):
        task_story("never-dispatched")


def test_remote_drain_request(relier_worker: Callable[..., WorkerProcess],
                              client: redis.Redis) -> None:
    worker = relier_worker(concurrency=1)
    receipt = tasks.record.push("drained", 10.0)
    wait_for(lambda: counter(client, "start", "drained"), 15, "start")
    assert request_drain(worker.hostname, timeout=1) != []
    assert request_drain("nobody@nowhere") == []
    assert worker.wait(20) == 0
    rec = record(client, receipt.id)
    assert rec.state == "queued"
    assert rec.history[-1].outcome == "handoff"
    assert "drain deadline (1s)" in rec.history[-1].cause
    relier_worker(concurrency=1)
    assert receipt.get(timeout=30) == "drained"


def test_pattern_3a_resumes_after_a_whole_worker_sigkill(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    resurrector()
    doomed = relier_worker(concurrency=1)
    receipt = tasks.reprocess_items_3a.push()
    wait_for(lambda: counter(client, "handled", "10"), 20, "ten items")
    doomed.kill_group(signal.SIGKILL)
    relier_worker(concurrency=1)
    result = receipt.get(timeout=30)
    assert 0 < result["processed"] < 40  # the second run started from the checkpoint
    handled = [counter(client, "handled", str(n)) for n in range(1, 41)]
    assert all(handled)
    assert sum(handled) <= 41  # at most the one item in flight at the kill ran twice


def test_pattern_3b_soft_hook_checkpoint_survives_timeouts(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    receipt = tasks.reprocess_items_3b.push()
    dlq = DeadLetterQueue()
    for _ in range(6):
        try:
            receipt.get(timeout=20)
            break
        except TaskDeadLetteredError:
            assert b"last_cursor" in record(client, receipt.id).checkpoint
            dlq.release(receipt.id)
    assert receipt.status == "SUCCESS"
    assert all(counter(client, "handled", str(n)) for n in range(1, 41))
    assert len(record(client, receipt.id).history) >= 3  # timed out, released, ... completed


def test_pattern_3c_runs_to_completion(relier_worker: Callable[..., WorkerProcess]) -> None:
    relier_worker(concurrency=1)
    assert tasks.reprocess_items_3c.push().get(timeout=30) == {"processed": 40}


def test_filesystem_checkpoints_resume_and_are_cleaned(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis, tmp_path: Path,
) -> None:
    env = {"RELIER_CHECKPOINT_BACKEND": "filesystem", "RELIER_CHECKPOINT_DIR": str(tmp_path),
           "RELIER_CHECKPOINT_MAX_INLINE_BYTES": "8"}
    resurrector(env=env)
    doomed = relier_worker(concurrency=1, env=env)
    receipt = tasks.checkpointed.push(40, "fs", pause=0.05)
    wait_for(lambda: counter(client, "item", "fs:5"), 15, "progress")
    assert record(client, receipt.id).checkpoint.startswith(b"@file:")
    assert len(list(tmp_path.glob("*.json"))) == 1
    doomed.kill_group(signal.SIGKILL)
    relier_worker(concurrency=1, env=env)
    assert receipt.get(timeout=30)["processed_from"] >= 5
    assert list(tmp_path.iterdir()) == []  # cleaned up on completion


def test_fenced_zombie_checkpoint_keeps_the_live_runs_file(
    relier_env: dict[str, str], client: redis.Redis, tmp_path: Path,
) -> None:
    # Real Redis, the real checkpointer and task_checkpoint script; the zombie is a run of
    # epoch 1 writing after incarnation 2 took the task over.
    settings = Settings.load({**relier_env, "RELIER_CHECKPOINT_BACKEND": "filesystem",
                              "RELIER_CHECKPOINT_DIR": str(tmp_path),
                              "RELIER_CHECKPOINT_MAX_INLINE_BYTES": "8"}, env_file=None)
    ledger = Ledger(settings)
    dispatch_raw("relier_testing.tasks.checkpointed", "ck-zombie", [40, "ck"])
    client.hset(KEYS.task("ck-zombie"), mapping={"s": "running", "ep": "2"})

    def checkpointer(epoch: int) -> Any:
        options = TaskOptions("relier_testing.tasks.checkpointed", "default", True)
        job = Job("ck-zombie", options, "default", "w", "h", epoch=epoch)
        return PhoenixMiddleware(ledger)._checkpointer(job)

    live, zombie = checkpointer(2), checkpointer(1)
    asyncio.run(live({"next": 7}))
    with pytest.raises(EpochFencedError):
        asyncio.run(zombie({"next": 3}))
    # The next incarnation reads the live run's checkpoint, not "No such file".
    stored = record(client, "ck-zombie").checkpoint
    assert ledger.checkpoints.decode(stored, "ck-zombie") == {"next": 7}
    assert [p.name for p in tmp_path.iterdir()] == [stored[len(b"@file:"):].decode()]
    # A later live write replaces the file it supersedes, and only that one.
    asyncio.run(live({"next": 8}))
    newer = record(client, "ck-zombie").checkpoint
    assert ledger.checkpoints.decode(newer, "ck-zombie") == {"next": 8}
    assert [p.name for p in tmp_path.iterdir()] == [newer[len(b"@file:"):].decode()]


def test_checkpoint_reference_to_etc_passwd_is_refused_by_the_worker(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis, tmp_path: Path,
) -> None:
    # Whoever can write Redis points the record's checkpoint at /etc/passwd: the worker
    # refuses the reference (never reads the file) and the task starts from scratch.
    env = {"RELIER_CHECKPOINT_BACKEND": "filesystem", "RELIER_CHECKPOINT_DIR": str(tmp_path)}
    receipt = tasks.checkpointed.push(3, "passwd", pause=0.01)
    client.hset(KEYS.task(receipt.id), "ck", b"@file:../../../../../../../etc/passwd")
    worker = relier_worker(concurrency=1, env=env)
    assert receipt.get(timeout=30) == {"processed_from": 0}
    assert client.lrange("test:resumed:passwd", 0, -1) == [b"0"]
    log = worker.log()
    assert "refused, not read" in log
    assert "root:" not in log


def test_oversized_inline_checkpoint_is_refused(
    relier_worker: Callable[..., WorkerProcess]
) -> None:
    relier_worker(concurrency=1)
    with pytest.raises(TaskDeadLetteredError, match="CheckpointTooLargeError"):
        tasks.big_checkpoint.push(300_000).get(timeout=20)
    assert tasks.big_checkpoint.push(1000).get(timeout=20) == "stored"


def test_two_resurrectors_requeue_each_orphan_once(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    resurrector()
    resurrector()
    doomed = relier_worker(concurrency=4)
    receipts = [tasks.record.push(f"rep{i}", 2.0) for i in range(4)]
    wait_for(lambda: all(counter(client, "start", f"rep{i}") for i in range(4)), 15, "running")
    doomed.kill_group(signal.SIGKILL)
    relier_worker(concurrency=4)
    for receipt in receipts:
        assert receipt.get(timeout=30)
        rec = record(client, receipt.id)
        assert [a.outcome for a in rec.history] == ["lease_expired", "completed"]
        assert rec.attempt == 2


def test_resurrector_pauses_while_re_queue_is_deep(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    env = {"RELIER_RESURRECTION_MAX_QUEUE_DEPTH": "3"}
    client.lpush("re-queue", *[b"junk"] * 3)
    proc = resurrector(env=env)
    doomed = relier_worker(concurrency=1, queues=["high_priority"])
    receipt = tasks.record.push("deep", 5.0)
    wait_for(lambda: counter(client, "start", "deep"), 15, "running")
    doomed.kill_group(signal.SIGKILL)
    time.sleep(5)
    assert record(client, receipt.id).state == "running"  # not flooded into re-queue
    assert "pausing resurrections" in proc.log()
    client.delete("re-queue")
    wait_for(lambda: record(client, receipt.id).state == "queued", 10, "requeued")


def test_without_a_resurrector_no_worker_scans(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    doomed = relier_worker(concurrency=1)
    receipt = tasks.record.push("noscan", 5.0)
    wait_for(lambda: counter(client, "start", "noscan"), 15, "running")
    doomed.kill_group(signal.SIGKILL)
    relier_worker(concurrency=1)
    time.sleep(5)
    assert record(client, receipt.id).state == "running"  # nobody scanned
    relier_worker(concurrency=1, env={"RELIER_RESURRECTOR_IN_WORKER": "true"})
    assert receipt.get(timeout=30) == "noscan"


def test_resurrected_task_waits_quietly_without_a_recovery_consumer(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    """No consumer for re-queue: the task waits there, re-published never and not counted
    as dying again (the earlier product re-sent it every 30 s until it was dead-lettered)."""
    resurrector(env={"RELIER_RESURRECTION_CLAIM_GRACE_PERIOD": "1"})
    doomed = relier_worker(concurrency=1, queues=["high_priority"])
    receipt = tasks.record.push("orphan", 8.0)
    wait_for(lambda: counter(client, "start", "orphan"), 15, "running")
    doomed.kill_group(signal.SIGKILL)
    relier_worker(concurrency=1, queues=["high_priority"])  # alive, but not on re-queue
    wait_for(lambda: record(client, receipt.id).state == "queued", 10, "requeued")
    time.sleep(5)
    rec = record(client, receipt.id)
    assert (rec.state, rec.republished, rec.resurrections) == ("queued", 0, 1)
    assert client.llen("re-queue") == 1
    relier_worker(concurrency=1, queues=["re-queue"])
    assert receipt.get(timeout=30) == "orphan"
