"""A drain ends quietly: no pool child killed under Celery, no message published twice.

Before, the drain SIGKILLed every pool child once its deadline passed, even when nothing was
handed off; Celery then logged ``WorkerLostError`` with a traceback for the handed-off run and
the worker's child-loss handler published the task a second time (its hand-off had already).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
import redis

from relier.phoenix import request_drain
from relier_testing import tasks
from relier_testing.helpers import counter, record, wait_for
from relier_testing.workers import WorkerProcess

QUEUES = ("high_priority", "default", "low_priority", "re-queue")


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def messages(client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each broker list."""
    return {q: int(client.llen(q)) for q in QUEUES}


def assert_quiet_exit(worker: WorkerProcess) -> None:
    assert worker.wait(30) == 0
    log = worker.log()
    assert "WorkerLostError" not in log, log[-3000:]
    assert "exited with 'signal" not in log, log[-3000:]  # billiard: a child died unasked
    assert "ERROR/" not in log, log[-3000:]


def test_drain_of_an_idle_worker_is_quiet(relier_worker: Callable[..., WorkerProcess],
                                          client: redis.Redis) -> None:
    worker = relier_worker(concurrency=2)
    assert request_drain(worker.hostname, 2.0)
    assert_quiet_exit(worker)
    assert sum(messages(client).values()) == 0


def test_task_finishing_before_the_deadline_completes_once(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    worker = relier_worker(concurrency=2)
    receipt = tasks.record.push("drain-finish", 1.5)
    wait_for(lambda: counter(client, "start", "drain-finish"), 15, "start")
    assert request_drain(worker.hostname, 10.0)
    assert_quiet_exit(worker)
    rec = record(client, receipt.id)
    assert rec.state == "done"
    assert [a.outcome for a in rec.history] == ["completed"]
    assert counter(client, "done", "drain-finish") == 1
    assert rec.republished == 0
    assert sum(messages(client).values()) == 0  # nothing left to run it again


def test_hand_off_at_the_deadline_publishes_one_message_and_logs_no_error(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    worker = relier_worker(concurrency=2, env={"RELIER_GRACEFUL_SHUTDOWN_TIMEOUT": "1"})
    receipt = tasks.record.push("drain-handoff", 30.0)
    wait_for(lambda: counter(client, "start", "drain-handoff"), 15, "start")
    worker.signal(signal.SIGTERM)
    assert_quiet_exit(worker)
    rec = record(client, receipt.id)
    assert rec.state == "queued"
    assert [a.outcome for a in rec.history] == ["handoff"]
    assert rec.republished == 0
    assert messages(client) == {"high_priority": 0, "default": 0, "low_priority": 0,
                                "re-queue": 1}
    relier_worker(concurrency=1)
    assert receipt.get(timeout=60) == "drain-handoff"
    assert counter(client, "done", "drain-handoff") == 1
