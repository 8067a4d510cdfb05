"""``@rl_task`` per-call options (``with_options``) with a real worker and resurrector."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from relier.core.settings import reset_settings
from relier.phoenix import task_story
from relier.tasks import dispatch
from relier_testing import tasks
from relier_testing.helpers import counter, wait_for
from relier_testing.workers import WorkerProcess


def test_a_countdown_waits_in_redis_and_never_runs_early(
    relier_worker: Callable[..., WorkerProcess], resurrector: Callable[..., WorkerProcess],
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    resurrector()
    relier_worker(concurrency=1)
    sent = time.time()
    receipt = tasks.record.with_options(countdown=2).push("later")
    record = task_story(receipt.id).record
    assert record.state == "scheduled"
    assert record.due_ms > 0
    time.sleep(1.0)
    assert counter(client, "start", "later") == 0, "ran before its countdown"
    assert receipt.get(timeout=20) == "later"
    assert time.time() - sent >= 2.0


def test_a_queue_declared_in_relier_queues_is_consumed_by_its_worker(
    relier_worker: Callable[..., WorkerProcess], monkeypatch: pytest.MonkeyPatch,
) -> None:
    queues = "high_priority,default,low_priority,emails"
    monkeypatch.setenv("RELIER_QUEUES", queues)
    reset_settings(None)
    dispatch.reset_dispatcher(None)
    relier_worker(queues=("emails", "re-queue"), env={"RELIER_QUEUES": queues})
    receipt = tasks.record.with_options(queue="emails").push("routed")
    assert receipt.get(timeout=20) == "routed"
    assert task_story(receipt.id).record.queue == "emails"
    monkeypatch.delenv("RELIER_QUEUES")
    reset_settings(None)
    with pytest.raises(ValueError, match="add it to RELIER_QUEUES"):
        tasks.record.with_options(queue="emails")


def test_a_task_that_expires_before_it_starts_is_dead_lettered_unrun(
    relier_worker: Callable[..., WorkerProcess], redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    receipt = tasks.record.with_options(expires=0.5).push("stale")
    time.sleep(1.0)  # no worker yet: the task waits past its expiry
    relier_worker(concurrency=1)
    wait_for(lambda: task_story(receipt.id).record.state == "dead", 20,
             "the expired task dead-lettered")
    record = task_story(receipt.id).record
    assert record.reason == "Expired", record
    assert counter(client, "start", "stale") == 0, "an expired task ran"
