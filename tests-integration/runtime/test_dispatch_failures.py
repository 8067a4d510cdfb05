"""What push and apush tell the caller when a dispatch cannot complete as asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis

from relier.core.exceptions import BrokerPublishDeferredError, DispatchError
from relier_testing import tasks
from relier_testing.helpers import counter, record
from relier_testing.redis_server import LocalRedis, free_port
from relier_testing.workers import WorkerProcess


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def _use_broker(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from relier.core.settings import reset_settings
    from relier.tasks.dispatch import reset_dispatcher

    monkeypatch.setenv("RELIER_BROKER_URL", url)
    reset_settings(None)
    reset_dispatcher(None)


# -- a call that can never run ------------------------------------------------------------------
def test_call_that_cannot_run_is_refused_and_nothing_is_written(client: redis.Redis) -> None:
    with pytest.raises(TypeError, match=r"relier_testing\.tasks\.multiply cannot be called "
                                        r"with these arguments: too many positional"):
        tasks.multiply.push("a", "b", "c")
    with pytest.raises(TypeError, match=r"tasks\.multiply.*unexpected keyword argument 'c'"):
        asyncio.run(tasks.multiply.apush(1, 2, c=3))
    with pytest.raises(TypeError, match=r"relier_testing\.tasks\.add.*missing a required"):
        tasks.add.push(1)  # add(a, b, ctx): ctx comes from Relier, b is missing
    assert client.dbsize() == 0  # no record, no envelope, no message, no sequence number
    assert tasks.add.push(1, 2).id  # the ctx task still takes its real arguments


# -- a separate broker that does not answer ------------------------------------------------------
def test_unreachable_broker_says_the_task_was_accepted(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    _use_broker(monkeypatch, f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(BrokerPublishDeferredError) as raised:
        tasks.record.push("deferred")
    err = raised.value
    text = str(err)
    assert f"127.0.0.1:{port}" in text  # the broker, not the coordination Redis
    assert "hunter2" not in text  # masked
    assert "WAS accepted" in text
    assert "Do not dispatch it again" in text
    assert "Nothing was enqueued" not in text
    # Not an error that "retry on connection/dispatch failure" handlers catch.
    assert not isinstance(err, DispatchError | ConnectionError)
    assert err.receipt is not None
    assert err.receipt.id == err.task_id
    rec = record(client, err.task_id)
    assert rec.state == "queued"
    assert client.zscore("rl:pending:high_priority", err.task_id) is not None

    async def produce() -> BrokerPublishDeferredError:
        with pytest.raises(BrokerPublishDeferredError) as araised:
            await tasks.record.apush("deferred-async")
        return araised.value

    assert record(client, asyncio.run(produce()).task_id).state == "queued"


def test_deferred_task_is_published_later_and_runs_once(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, relier_env: dict[str, str],
    relier_worker: Callable[..., WorkerProcess], resurrector: Callable[..., WorkerProcess],
) -> None:
    port = free_port()
    broker_url = f"redis://127.0.0.1:{port}/0"
    _use_broker(monkeypatch, broker_url)
    with pytest.raises(BrokerPublishDeferredError) as raised:
        tasks.record.push("late")
    broker = LocalRedis(port=port).start()  # the broker comes back
    try:
        env = {"RELIER_BROKER_URL": broker_url, "RELIER_RESURRECTION_CLAIM_GRACE_PERIOD": "1"}
        resurrector(env=env)
        relier_worker(concurrency=1, env=env)
        assert raised.value.receipt.get(timeout=40) == "late"
        assert counter(client, "done", "late") == 1
    finally:
        broker.cleanup()
