"""The publish side of the drop-in: Relier's kombu transport records plain Celery messages.

A Celery app whose ``broker_transport`` is ``relier.tasks.transport:Transport`` sends its task
messages through the dispatch script: record, sealed copy and message (or scheduled copy) in
one call. These tests publish with a real Celery app on the test Redis and read what the
ledger holds; the worker side of plain tasks is not part of them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from relier.core.exceptions import EpochFencedError
from relier.core.ops import DispatchRequest
from relier.core.plain import sealed_body, stored_message
from relier.envelope import Keyring, open_bytes, seal_bytes
from relier.phoenix import Ledger
from relier.phoenix.resurrector import Resurrector
from relier.tasks import transport


@pytest.fixture
def app(relier_env: dict[str, str]) -> Iterator[Celery]:
    transport.reset_recorder()
    app = Celery("plain-publish", broker=relier_env["RELIER_REDIS_URL"],
                 set_as_current=False)
    app.conf.broker_transport = "relier.tasks.transport:Transport"
    yield app
    app.close()
    transport.reset_recorder()


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def queued_messages(client: redis.Redis, queue: str) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_send_task_is_recorded_with_its_sealed_message_in_one_step(
    app: Celery, client: redis.Redis
) -> None:
    result = app.send_task("shop.add", args=[2, 3], kwargs={"note": "x"}, queue="emails")
    rec = Ledger().record(result.id)
    assert (rec.state, rec.plain, rec.task_name, rec.queue) == ("queued", True, "shop.add",
                                                                "emails")
    [message] = queued_messages(client, "emails")
    headers = message["headers"]
    assert isinstance(headers, dict)
    assert (headers["id"], headers["rl_seq"]) == (result.id, rec.message_seq)
    # The record keeps the message as sent, sealed: the arguments are in its body.
    stored = json.loads(open_bytes(rec.envelope, Keyring()))
    assert stored["body"] == message["body"]
    body = json.loads(base64.b64decode(str(message["body"])))
    assert body[:2] == [[2, 3], {"note": "x"}]


def test_a_countdown_waits_in_redis_and_is_promoted_by_the_resurrector_when_due(
    app: Celery, client: redis.Redis
) -> None:
    later = app.send_task("shop.later", countdown=60, queue="emails")
    soon = app.send_task("shop.soon", countdown=0.3, queue="emails")
    ledger = Ledger()
    for task_id in (later.id, soon.id):
        rec = ledger.record(task_id)
        assert rec.state == "scheduled"
        assert rec.due_ms > 0
    assert client.llen("emails") == 0  # nothing in a list: no worker can hold it in memory
    assert ledger.scheduled_count() == 2
    due_in = ledger.record(later.id).due_ms - ledger.now_ms()
    assert 59_000 < due_in <= 60_000

    resurrector = Resurrector(ledger=ledger)
    report, sleep_for = resurrector.run_pass()
    assert report.promoted == 0
    assert sleep_for <= 0.31  # it wakes up for the next due time, not a whole interval late
    time.sleep(0.35)
    report, _ = resurrector.run_pass()
    assert report.promoted == 1
    rec = ledger.record(soon.id)
    assert (rec.state, rec.due_ms) == ("queued", 0)
    [message] = queued_messages(client, "emails")
    assert message["headers"]["id"] == soon.id  # type: ignore[index]
    assert ledger.record(later.id).state == "scheduled"
    assert ledger.promote_due(10)[0] == 0  # a second promoter finds nothing to do


def test_a_task_due_beyond_the_max_countdown_is_refused_and_nothing_is_written(
    app: Celery, client: redis.Redis
) -> None:
    with pytest.raises(ValueError, match="RELIER_MAX_COUNTDOWN"):
        app.send_task("shop.typo", countdown=400 * 86_400, queue="emails", task_id="typo")
    assert Ledger().record("typo").state == "unknown"
    assert client.llen("emails") == 0


def test_an_unreadable_eta_is_dead_lettered_with_the_message(
    app: Celery, client: redis.Redis
) -> None:
    app.send_task("shop.bad", eta="next tuesday", queue="emails", task_id="bad-eta")
    rec = Ledger().record("bad-eta")
    assert (rec.state, rec.reason) == ("dead", "BadEta")
    assert b"next tuesday" in rec.envelope
    assert client.llen("emails") == 0


def test_a_retry_re_dispatches_the_running_record_and_a_zombie_retry_is_fenced(
    relier_env: dict[str, str], client: redis.Redis
) -> None:
    ledger = Ledger()
    worker = "w-test"
    ledger.register_worker(worker, ttl_ms=30_000, facts={})
    stored = stored_message({"body": "", "headers": {"task": "shop.t", "id": "t1"},
                             "properties": {"delivery_info": {"routing_key": "q1"}}})
    request = DispatchRequest(task_id="t1", task_name="shop.t", queue="q1",
                              envelope=seal_bytes(stored, Keyring()), max_resurrections=5,
                              plain=True)
    assert ledger.dispatch(request).kind == "accepted"
    claim = ledger.claim(task_id="t1", worker_id=worker, queue="q1",
                         message_seq=str(ledger.record("t1").message_seq))
    assert claim.kind == "claimed"
    # The run of epoch 1 retries itself in 5 s: the record waits, its attempt ended.
    retry = DispatchRequest(task_id="t1", task_name="shop.t", queue="q1",
                            envelope=request.envelope, max_resurrections=5, plain=True,
                            delay_ms=5_000, from_epoch=claim.epoch)
    assert ledger.dispatch(retry).scheduled
    rec = ledger.record("t1")
    assert (rec.state, rec.attempt, rec.owner) == ("scheduled", 2, "")
    assert rec.history[-1].outcome == "redispatched"
    # The same run publishing again (a zombie: its record moved on) changes nothing.
    reply = ledger.dispatch(retry)
    assert reply.kind == "fenced"
    assert ledger.record("t1").attempt == 2
    assert not ledger.complete(task_id="t1", worker_id=worker, epoch=claim.epoch, result=b"1")


def test_the_recorder_turns_a_fenced_retry_into_an_error(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.send_task("shop.t", queue="q1", task_id="t2")
    ledger = Ledger()
    ledger.register_worker("w", ttl_ms=30_000, facts={})
    assert ledger.claim(task_id="t2", worker_id="w", queue="q1").kind == "claimed"
    monkeypatch.setattr(transport, "_publishing_epoch", lambda task_id: 7)  # not epoch 1
    with pytest.raises(EpochFencedError):
        app.send_task("shop.t", queue="q1", task_id="t2", countdown=1)
    assert ledger.record("t2").state == "running"


def test_a_plain_record_is_republished_as_the_message_its_producer_sent(
    app: Celery, client: redis.Redis
) -> None:
    sent = app.send_task("shop.add", args=[40, 2], queue="emails")
    client.delete("emails")  # the message is lost (kombu popped it, the worker died)
    rec = Ledger().record(sent.id)
    assert Ledger().republish(sent.id, "emails", rec.message_seq).kind == "done"
    [message] = queued_messages(client, "emails")
    body = json.loads(base64.b64decode(str(message["body"])))
    assert body[0] == [40, 2]
    assert json.loads(sealed_body(rec.envelope))["body"] == message["body"]


def test_messages_that_are_not_tasks_pass_through_untouched(
    app: Celery, client: redis.Redis
) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.basic_publish(
            conn.default_channel.prepare_message("hello"), exchange="", routing_key="plainq")
    assert client.llen("plainq") == 1
    assert not client.keys("rl:t:*")
