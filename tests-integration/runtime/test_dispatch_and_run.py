"""The runtime end to end: real Redis, real worker subprocesses (prefork, solo, threads)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
import redis

from relier_testing import tasks
from relier_testing.helpers import plain_message
from relier_testing.workers import WorkerProcess


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_push_apush_and_context_on_every_pool(
    relier_worker: Callable[..., WorkerProcess], pool: str
) -> None:
    worker = relier_worker(pool=pool, concurrency=2)
    receipt = tasks.add.push(2, 3)
    result = receipt.get(timeout=15)
    assert result["sum"] == 5
    assert result["task_id"] == receipt.id
    assert result["attempt"] == 1
    assert result["worker"] == worker.hostname
    assert result["args"] == [2, 3]
    assert receipt.status == "SUCCESS"
    assert receipt.ready()

    async def produce() -> object:
        return await (await tasks.multiply.apush(6, 7)).aget(timeout=15)

    assert asyncio.run(produce()) == 42
    proxied = tasks.via_proxy.push("item-1").get(timeout=15)
    assert proxied["name"] == "relier_testing.tasks.via_proxy"
    assert proxied["item"] == "item-1"


def test_push_from_four_threads_at_once(relier_worker: Callable[..., WorkerProcess]) -> None:
    relier_worker(concurrency=2)
    receipts: list[object] = []
    lock = threading.Lock()

    def produce(n: int) -> None:
        for i in range(25):
            r = tasks.multiply.push(n, i)
            with lock:
                receipts.append((n * i, r))

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.id for _, r in receipts}) == 100  # type: ignore[attr-defined]
    for expected, r in receipts:  # type: ignore[misc]
        assert r.get(timeout=30) == expected


@pytest.mark.parametrize("task_name", ["fan_out", "fan_out_sync", "fan_out_async"])
def test_dispatch_from_inside_a_task(relier_worker: Callable[..., WorkerProcess],
                                     relier_env: dict[str, str], task_name: str) -> None:
    relier_worker(concurrency=2)
    keys = [f"{task_name}-{i}" for i in range(5)]
    assert getattr(tasks, task_name).push(keys).get(timeout=15) == 5
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    for _ in range(150):
        if all(client.get(f"test:done:{k}") for k in keys):
            break
        asyncio.run(asyncio.sleep(0.1))
    assert [client.get(f"test:done:{k}") for k in keys] == [b"1"] * 5


def test_push_refuses_a_thread_with_a_running_loop(relier_env: dict[str, str]) -> None:
    async def inside_loop() -> None:
        tasks.noop.push()

    with pytest.raises(RuntimeError, match=r"Use `await noop.apush"):
        asyncio.run(inside_loop())


def test_thousand_pushes_reuse_connections(relier_env: dict[str, str]) -> None:
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    tasks.noop.push()  # warm the pool
    before = len(client.client_list())
    threads_before = threading.active_count()
    for _ in range(1000):
        tasks.noop.push()
    assert len(client.client_list()) - before <= 1
    assert threading.active_count() == threads_before  # no loop threads were started
    assert client.llen("default") == 1001


def test_delay_of_an_rl_task_is_a_push_recorded_at_dispatch(
        relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str]) -> None:
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    receipt = tasks.record.delay("via-delay")  # no worker yet: the record exists already
    assert client.hget(f"rl:t:{{{receipt.id}}}", "s") == b"queued"
    assert client.hget(f"rl:t:{{{receipt.id}}}", "lg") is None  # not a legacy adoption
    later = tasks.record.apply_async(("via-apply",), countdown=1)
    assert client.hget(f"rl:t:{{{later.id}}}", "s") == b"scheduled"
    relier_worker(concurrency=1)
    assert receipt.get(timeout=20) == "via-delay"
    with pytest.raises(TypeError):
        tasks.record.delay()  # a call that can never run is refused, as push refuses it


def test_legacy_delay_runs_and_is_counted(relier_worker: Callable[..., WorkerProcess],
                                          relier_env: dict[str, str]) -> None:
    relier_worker(concurrency=1)
    async_result = plain_message(tasks.record, "legacy-1")
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    for _ in range(100):
        if client.get("test:done:legacy-1"):
            break
        asyncio.run(asyncio.sleep(0.1))
    assert client.get("test:done:legacy-1") == b"1"
    assert client.hget("rl:stats", "legacy_messages") == b"1"
    assert client.hget(f"rl:t:{{{async_result.id}}}", "lg") == b"1"  # adopted by the ledger


def test_legacy_rejected_when_unsigned_not_accepted(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str]
) -> None:
    relier_worker(concurrency=1, env={"RELIER_ACCEPT_UNSIGNED": "false"})
    async_result = plain_message(tasks.record, "legacy-2")
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    for _ in range(100):
        if client.zscore("rl:dlq", async_result.id) is not None:
            break
        asyncio.run(asyncio.sleep(0.1))
    record = client.hgetall(f"rl:t:{{{async_result.id}}}")
    assert record[b"dr"] == b"LegacyMessageRejectedError"
    assert b"legacy-2" in client.get(f"rl:e:{{{async_result.id}}}")  # arguments are kept
    assert client.get("test:start:legacy-2") is None  # never ran


def test_message_matches_a_real_apply_async_message(relier_env: dict[str, str]) -> None:
    """The doorbell message has every field of the message Celery itself publishes."""
    import json

    from relier.tasks.app import app

    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    app.send_task("relier_testing.tasks.noop", queue="low_priority")
    real = json.loads(client.rpop("low_priority"))  # type: ignore[arg-type]
    tasks.noop.push()
    ours = json.loads(client.rpop("default"))  # type: ignore[arg-type]
    assert set(ours) == set(real)
    assert set(ours["properties"]) == set(real["properties"])
    assert set(real["headers"]) <= set(ours["headers"])
