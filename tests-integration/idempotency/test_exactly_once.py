"""Exactly-once effects: dispatch dedup, concurrent producers, crashes, idempotency_lock."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
import redis

from relier.core.exceptions import (
    IdempotencyInFlightError,
    IdempotencyKeyError,
    RelierError,
    TaskDeadLetteredError,
)
from relier.core.idempotency import idempotency_lock
from relier_testing import tasks
from relier_testing.helpers import counter, record, wait_for
from relier_testing.workers import WorkerProcess

PRODUCER = """
import json, os, sys, time
from relier_testing import tasks
start = float(sys.argv[1])
while time.time() < start:
    pass
ids = [tasks.charge.push("cus_42", 5000).id for _ in range(50)]
print(json.dumps(ids))
"""


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def test_four_producer_processes_fifty_dispatches_one_execution(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str],
    client: redis.Redis,
) -> None:
    relier_worker(concurrency=2)
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", PRODUCER, str(start)],
                              env={**os.environ, **relier_env}, stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    ids = set()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        ids.update(json.loads(out))
    assert len(ids) == 1  # 200 dispatches, one task
    (task_id,) = ids
    wait_for(lambda: record(client, task_id).state == "done", 20, "the one charge")
    time.sleep(0.5)
    assert counter(client, "charge", "cus_42:5000") == 1


def test_fifty_threads_at_once_run_once(relier_worker: Callable[..., WorkerProcess],
                                         client: redis.Redis) -> None:
    relier_worker(concurrency=2)
    barrier = threading.Barrier(50)
    receipts = []
    lock = threading.Lock()

    def produce() -> None:
        barrier.wait()
        receipt = tasks.charge.push("cus_7", 100)
        with lock:
            receipts.append(receipt)

    threads = [threading.Thread(target=produce) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.id for r in receipts}) == 1
    results = {json.dumps(r.get(timeout=20), sort_keys=True) for r in receipts}
    assert len(results) == 1
    assert counter(client, "charge", "cus_7:100") == 1
    assert sum(not r.deduplicated for r in receipts) == 1


def test_completed_key_returns_cached_result_without_enqueueing(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    first = tasks.charge.push("cus_1", 1)
    result = first.get(timeout=20)
    queued_before = client.llen("default")
    again = tasks.charge.push("cus_1", 1)
    assert again.deduplicated
    assert again.id == first.id
    assert again.status == "SUCCESS"
    assert again.get(timeout=0.01) == result
    assert client.llen("default") == queued_before
    assert tasks.charge.push("cus_1", 2).id != first.id  # other arguments, other key


def test_apush_dedup_in_flight_returns_the_running_task(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)

    async def both() -> tuple[str, str, bool]:
        a = await tasks.charge.apush("cus_2", 2, 1.0)
        b = await tasks.charge.apush("cus_2", 2, 1.0)
        await b.aget(timeout=20)
        return a.id, b.id, b.deduplicated

    first, second, dedup = asyncio.run(both())
    assert first == second
    assert dedup
    assert counter(client, "charge", "cus_2:2") == 1


def test_sigkilled_idempotent_task_commits_once(
    relier_worker: Callable[..., WorkerProcess],
    resurrector: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    resurrector()
    relier_worker(concurrency=1)
    receipt = tasks.charge_and_die_once.push("cus_9")
    assert receipt.get(timeout=30) == {"customer": "cus_9"}
    rec = record(client, receipt.id)
    assert [a.outcome for a in rec.history] == ["killed", "completed"]
    assert counter(client, "done", "cus_9") == 1  # the body completed once
    dup = tasks.charge_and_die_once.push("cus_9")
    assert dup.deduplicated
    assert dup.get(timeout=1) == {"customer": "cus_9"}


def test_failure_releases_the_key_so_a_retry_runs(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=1)
    client.set("test:broken:cus_5", 1)
    with pytest.raises(TaskDeadLetteredError):
        tasks.charge_flaky.push("cus_5").get(timeout=20)
    client.delete("test:broken:cus_5")
    retry = tasks.charge_flaky.push("cus_5")
    assert not retry.deduplicated
    assert retry.get(timeout=20) == "charged cus_5"


def test_non_canonical_arguments_fail_at_dispatch(relier_env: dict[str, str],
                                                  client: redis.Redis) -> None:
    with pytest.raises(IdempotencyKeyError, match=r"is a set.*sorted"):
        tasks.charge.push({"a", "b"}, 1)  # type: ignore[arg-type]
    assert client.dbsize() == 0


def test_pattern_2_webhook_with_changing_payload_runs_once(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis
) -> None:
    relier_worker(concurrency=2)
    first = tasks.process_webhook.push("evt_1", {"event": "evt_1", "ts": 1000})
    second = tasks.process_webhook.push("evt_1", {"event": "evt_1", "ts": 1007})
    assert first.get(timeout=20) == second.get(timeout=20)
    assert counter(client, "webhook", "evt_1") == 1


def test_idempotency_lock_commit_release_and_in_flight(relier_env: dict[str, str]) -> None:
    with idempotency_lock(key="order:1", ttl=60) as lock:
        assert not lock.already_executed
        lock.set_result({"ok": 1})
    with idempotency_lock(key="order:1") as lock:
        assert lock.already_executed
        assert lock.cached_result == {"ok": 1}

    with pytest.raises(ValueError, match="boom"), idempotency_lock(key="order:2") as lock:
        raise ValueError("boom")
    with idempotency_lock(key="order:2") as lock:
        assert not lock.already_executed  # released on the exception: a retry runs

    async def nested() -> None:
        async with idempotency_lock(key="order:3") as outer:
            assert not outer.already_executed
            with pytest.raises(IdempotencyInFlightError, match="order:3"):
                async with idempotency_lock(key="order:3"):
                    pass
            outer.set_result("done")

    asyncio.run(nested())


def test_idempotency_lock_is_renewed_while_a_long_block_runs(
    relier_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELIER_IDEMPOTENCY_INFLIGHT_TTL", "1")
    from relier.core.settings import reset_settings

    reset_settings(None)

    async def long_block() -> None:
        async with idempotency_lock(key="slow") as lock:
            await asyncio.sleep(3.0)  # three times the in-flight TTL
            with pytest.raises(IdempotencyInFlightError):
                async with idempotency_lock(key="slow"):
                    pass
            lock.set_result("kept")

    asyncio.run(long_block())
    with idempotency_lock(key="slow") as lock:
        assert lock.cached_result == "kept"


def test_lost_claim_is_reported_not_silently_committed(relier_env: dict[str, str],
                                                      client: redis.Redis) -> None:
    lock = idempotency_lock(key="stolen")
    result = lock.__enter__()
    client.delete("rl:lock:stolen")  # the claim lapses (holder presumed dead)
    result.set_result(1)
    with pytest.raises(RelierError, match="claim was lost"):
        lock.__exit__(None, None, None)
