"""Celery's own semantics on an installed app, settled in the ledger.

Every way a plain task's run can end leaves a record that says how: completed, dead-lettered
with its exception and traceback, handed back by ``Reject(requeue=True)`` and run again,
expired, timed out by Celery's hard ``time_limit``. A message whose body was changed after it
was recorded is dead-lettered and never runs.
"""

from __future__ import annotations

import base64
import importlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
import redis

from relier.core.plain import sealed_body
from relier_testing.helpers import counter, wait_for
from relier_testing.workers import WorkerProcess

QUEUES = ("celery", "re-queue")


@pytest.fixture
def plain(relier_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
          worker_factory: Callable[..., WorkerProcess],
          resurrector: Callable[..., WorkerProcess]) -> ModuleType:
    monkeypatch.setenv("PLAIN_APP_RELIER", "1")
    monkeypatch.setenv("PLAIN_APP_ACKS_LATE", "0")
    import relier_testing.plain_app as plain_app

    module = importlib.reload(plain_app)
    env = {**relier_env, "PLAIN_APP_RELIER": "1", "PLAIN_APP_ACKS_LATE": "0",
           "RELIER_PREFLIGHT": "warn"}
    worker_factory("relier_testing.plain_app", env=env, queues=QUEUES,
                   concurrency=1).wait_ready()
    resurrector()  # promotes due countdowns
    return module


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def _record(client: redis.Redis, task_id: str) -> dict[str, str]:
    return {k.decode(): v.decode(errors="replace")
            for k, v in client.hgetall(f"rl:t:{{{task_id}}}").items()}


def _ended(client: redis.Redis, task_id: str) -> dict[str, str]:
    return wait_for(lambda: (r := _record(client, task_id)).get("s") in ("done", "dead") and r,
                    20, f"task {task_id} to end (record: {_record(client, task_id)})")


def test_an_exception_dead_letters_the_task_with_its_traceback(
        plain: ModuleType, client: redis.Redis) -> None:
    task_id = plain.boom.delay("b").id
    rec = _ended(client, task_id)
    assert rec["s"] == "dead"
    assert rec["dr"] == "RuntimeError"
    assert "boom b" in rec["dm"]
    assert "Traceback" in rec["tb"]
    assert counter(client, "runs", "b") == 1


def test_reject_with_requeue_redelivers_and_succeeds(plain: ModuleType,
                                                     client: redis.Redis) -> None:
    result = plain.rejects_once.delay("rq", True)
    rec = _ended(client, result.id)
    assert rec["s"] == "done", rec
    assert counter(client, "runs", "rq") == 2


def test_reject_without_requeue_is_dead_lettered_not_dropped(plain: ModuleType,
                                                             client: redis.Redis) -> None:
    task_id = plain.rejects_once.delay("rn", False).id
    rec = _ended(client, task_id)
    assert rec["s"] == "dead"
    assert rec["dr"] == "Rejected"
    assert counter(client, "runs", "rn") == 1


def test_an_expired_task_is_recorded_as_expired(plain: ModuleType,
                                                client: redis.Redis) -> None:
    # Due in 2 s, expired after 1 s: it expires while it waits in Redis.
    task_id = plain.stamp.apply_async(("exp",), countdown=2, expires=1).id
    rec = _ended(client, task_id)
    assert rec["s"] == "dead", rec
    assert rec["dr"] == "Expired", rec
    assert client.get("test:stamp:exp") is None


def test_celery_hard_time_limit_dead_letters_as_a_timeout(plain: ModuleType,
                                                          client: redis.Redis) -> None:
    task_id = plain.hangs.delay("h").id
    rec = _ended(client, task_id)
    assert rec["s"] == "dead", rec
    assert rec["dr"] == "TimeoutError", rec
    time.sleep(4)  # no resurrection as a worker death follows
    assert counter(client, "runs", "h") == 1
    assert _record(client, task_id)["s"] == "dead"


def test_a_forged_copy_of_a_recorded_task_does_not_run(plain: ModuleType,
                                                       client: redis.Redis) -> None:
    task_id = plain.stamp.apply_async(("real",), countdown=1).id
    client.lpush("celery", json.dumps(_message(task_id, ["forged"])))
    rec = _ended(client, task_id)
    assert rec["s"] == "done", rec
    assert client.get("test:stamp:forged") is None, "the forged arguments never ran"
    assert client.get("test:stamp:real") is not None


def test_a_sealed_message_changed_in_redis_is_dead_lettered_unrun(
        plain: ModuleType, client: redis.Redis) -> None:
    task_id = plain.stamp.apply_async(("real",), countdown=2).id
    key = f"rl:e:{{{task_id}}}"
    sealed = client.get(key)
    assert sealed
    stored = sealed_body(sealed)
    message = json.loads(stored)
    message["body"] = base64.b64encode(json.dumps([["evil"], {}, {}]).encode()).decode()
    # Same seal, other message: what a write to Redis by someone without the key looks like.
    client.set(key, sealed[:len(sealed) - len(stored)] + json.dumps(message).encode())
    rec = _ended(client, task_id)
    assert rec["s"] == "dead", rec
    assert rec["dr"] == "PayloadIntegrityError", rec
    assert client.get("test:stamp:evil") is None
    assert client.get("test:stamp:real") is None


def _message(task_id: str, args: list[str], eta: str | None = None) -> dict[str, object]:
    """A Celery protocol-2 message as a producer without Relier puts it in Redis."""
    return {
        "body": base64.b64encode(json.dumps([args, {}, {}]).encode()).decode(),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": "relier_testing.plain_app.stamp", "id": task_id,
                    "root_id": task_id, "parent_id": None, "group": None, "retries": 0,
                    "eta": eta, "expires": None},
        "properties": {"correlation_id": task_id, "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": "celery"},
                       "priority": 0, "body_encoding": "base64",
                       "delivery_tag": f"tag-{task_id}-{args[0]}"},
    }


def test_a_message_from_a_producer_without_relier_is_adopted(
        plain: ModuleType, client: redis.Redis) -> None:
    task_id = "foreign-1"
    eta = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    message = _message(task_id, ["foreign"], eta)
    sent = time.time()
    client.lpush("celery", json.dumps(message))
    wait_for(lambda: _record(client, task_id).get("s") == "scheduled", 10,
             "the foreign eta message scheduled in Redis")
    rec = _ended(client, task_id)
    assert rec["s"] == "done"
    assert float(client.get("test:stamp:foreign") or 0) >= sent + 1.5


def test_a_plain_message_for_an_unknown_task_is_dead_lettered_with_its_message(
        plain: ModuleType, client: redis.Redis) -> None:
    """A typo in ``send_task`` (or a worker fleet that lacks the task): recorded at publish,
    and dead-lettered with the message it was sent as, never dropped."""
    task_id = plain.app.send_task("relier_testing.plain_app.no_such_task", args=[1]).id
    rec = _ended(client, task_id)
    assert rec["s"] == "dead", rec
    assert rec["dr"] == "UnregisteredTask", rec
    assert "no_such_task" in rec["dm"]
    assert client.zscore("rl:dlq", task_id) is not None
    assert b"no_such_task" in (client.get(f"rl:e:{{{task_id}}}") or b"")  # the message kept
